"""The VM stage: the cgroup-sensitive integration tests on cgroup v2, inside a qemu guest that
runs Debian's kernel (this project's machines boot the v1 hybrid layout), in the two layouts
``guest.sh`` sets up (host and pod). One boot runs both; the console is the evidence, kept in
``.cache/vm/console.log`` and its tail printed on failure.

Without the kernel package or qemu the stage fails, naming what is missing; set
``SANDPOOL_SKIP_VM=1`` to skip it instead (locally, with a reason; never in CI).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.kernel import CACHE, VmUnavailable, build_initramfs, fetch_kernel
from tests.vm.machine import boot, pick_accel, qemu_binary

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1500)]
LAYOUTS = ("host", "pod")  # SANDPOOL_VM_LAYOUTS=pod runs one (a failing test's checks miss)
BOOT_TIMEOUT_S = 1400
CONSOLE_TAIL = 120
# The tests the guest runs, in each layout (pytest node ids, relative to the worktree): limits,
# OOM (a child's too) on both runtimes, pids, warm slots, a timeout, kill, gc after a SIGKILLed
# owner, a runc user namespace with the state dir on ext4 (the guest's /tmp is a tmpfs, which
# has no idmapped mounts before 6.3); each checks that nothing is left behind; and a sandbox's
# checkpoint/restore (CRIU works on this kernel, not on the hosts' 6.18) with gVisor's
# refusal. API-level where possible: every Python start (a CLI call) costs seconds under
# emulation.
_REAL = "tests/integration/test_runtime_real.py"
_CHECKPOINT = "tests/integration/sandbox/test_sandbox_checkpoint.py"
GUEST_TESTS = (
    "tests/integration/test_userns_ext4.py",
    f"{_REAL}::test_memory_limit_oom_is_reported",
    f"{_REAL}::test_pids_limit",
    "tests/integration/test_oom_child.py",
    "tests/integration/test_cgroup_slots.py",
    "tests/integration/test_kill_and_gc.py",
    "tests/integration/test_cgroup_v2.py",
    "tests/integration/test_run_cli.py::test_exit_codes[in-process-args2-124-performance]",
    f"{_CHECKPOINT}::test_a_restored_sandbox_goes_on_with_its_processes_memory",
    f"{_CHECKPOINT}::test_gvisor_says_checkpoint_is_not_supported",
)


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
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """Boot the VM once, running every guest test in every layout."""
    if os.environ.get("SANDPOOL_IN_VM"):
        pytest.skip("already inside the test VM")
    if os.geteuid() != 0:
        pytest.skip("needs root (the 9p shares pass the host's file owners through)")
    out = tmp_path_factory.mktemp("vm-out")
    try:
        qemu_binary()
        kernel = fetch_kernel()
        initramfs = build_initramfs(kernel, out / "initramfs.cpio.gz")
        accel = pick_accel(kernel, CACHE / "accel")
    except VmUnavailable as exc:
        _unavailable(str(exc))
    tests = os.environ.get("SANDPOOL_VM_TESTS", "").split() or GUEST_TESTS  # a subset, by hand
    args = ["-p", "no:cacheprovider", "-q", "-rfE", "--color=no", *tests]
    layouts = os.environ.get("SANDPOOL_VM_LAYOUTS", " ".join(LAYOUTS))
    (out / "job.env").write_text(
        f"LAYOUTS={shlex.quote(layouts)}\nPYTEST_ARGS={shlex.quote(' '.join(args))}\n"
    )
    console = CACHE / "console.log"
    started = time.monotonic()
    status = boot(kernel, initramfs, out, console, BOOT_TIMEOUT_S, accel)
    yield Stage(console, status, time.monotonic() - started)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cgroup_v2_guest_tests_pass(stage: Stage, layout: str) -> None:
    """Every guest test passed in ``layout`` (the guest printed pytest's exit status 0)."""
    if f"vm: layout {layout}: start" not in stage.text and "vm: done" in stage.text:
        pytest.skip(f"the {layout} layout was not selected (SANDPOOL_VM_LAYOUTS)")
    if "vm: done" not in stage.text:
        pytest.fail(f"the VM did not finish (qemu exit {stage.status})\n{stage.tail()}")
    if f"vm: layout {layout}: pytest exit 0 " not in stage.text:
        pytest.fail(f"guest tests failed in the {layout} layout\n{stage.tail()}")
