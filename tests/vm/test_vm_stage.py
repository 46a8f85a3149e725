"""The VM stage: the cgroup-sensitive integration tests on cgroup v2, inside a qemu guest that
runs Debian's kernel (this project's machines boot the v1 hybrid layout), in the two layouts
``guest.sh`` sets up (host and pod). One boot runs both; the console is the evidence, kept in
``.cache/vm/console.log`` and its tail printed on failure. The boot starts when collection
ends and runs beside the host's tests (``stage.py``); this module waits for it.

Without the kernel package or qemu the stage fails, naming what is missing; set
``SANDPOOL_SKIP_VM=1`` to skip it instead (locally, with a reason; never in CI).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.kernel import VmUnavailable
from tests.vm.stage import LAYOUTS, Started, can_run_here, start, take_early

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1500)]
BOOT_TIMEOUT_S = 1400
CONSOLE_TAIL = 120


class Stage:
    """The result of one boot: the console text and when it ran."""

    def __init__(self, console: Path, status: int, seconds: float) -> None:
        self.console, self.status, self.seconds = console, status, seconds
        self.text = console.read_text(errors="replace")

    def tail(self) -> str:
        lines = self.text.splitlines()[-CONSOLE_TAIL:]
        return f"VM console ({self.console}), last {len(lines)} lines:\n" + "\n".join(lines)


def _unavailable(reason: str) -> None:
    if os.environ.get("SANDPOOL_SKIP_VM") == "1":
        pytest.skip(f"VM stage skipped (SANDPOOL_SKIP_VM=1): {reason}")
    pytest.fail(f"VM stage cannot run: {reason} (set SANDPOOL_SKIP_VM=1 to skip it locally)")


@pytest.fixture(scope="module")
def stage() -> Iterator[Stage]:
    """The boot that runs every guest test in every layout (started early, or now), once it
    powered off."""
    why_not = can_run_here()
    if why_not:
        pytest.skip(why_not)
    started: Started | None = take_early()
    if started is None:
        try:
            started = start()
        except VmUnavailable as exc:
            _unavailable(str(exc))
    assert started is not None
    left = max(0.0, BOOT_TIMEOUT_S - (time.monotonic() - started.started))
    status = started.boot.wait(left)
    yield Stage(started.boot.console, status, time.monotonic() - started.started)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cgroup_v2_guest_tests_pass(stage: Stage, layout: str) -> None:
    """Every guest test passed in ``layout`` (the guest printed pytest's exit status 0)."""
    if f"vm: layout {layout}: start" not in stage.text and "vm: done" in stage.text:
        pytest.skip(f"the {layout} layout was not selected (SANDPOOL_VM_LAYOUTS)")
    if "vm: done" not in stage.text:
        pytest.fail(f"the VM did not finish (qemu exit {stage.status})\n{stage.tail()}")
    if f"vm: layout {layout}: pytest exit 0 " not in stage.text:
        pytest.fail(f"guest tests failed in the {layout} layout\n{stage.tail()}")
