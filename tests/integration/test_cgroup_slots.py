"""Warm parent cgroups with the real runc: reuse, OOM per run, close, and gc after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.worker.container import Stdio
from sandpool.worker.request import RunRequest
from tests.integration.conftest import Sandbox, parent_cgroups

pytestmark = [pytest.mark.root, pytest.mark.runc]
BUSYBOX = "builtin:busybox"


def _slots(sandbox: Sandbox) -> list[Path]:
    return sorted(s for top in parent_cgroups(sandbox.cgroup_parent) for s in top.glob("slot-*"))


@pytest.fixture
def own_sp(sandbox: Sandbox, no_leaks: Sandbox) -> Iterator[Sandpool]:
    """A Sandpool of this test alone, closed before the leak check."""
    with Sandpool(LoadedConfig.load([str(sandbox.config_file)], {}).resolved) as pool:
        yield pool


class _Run:
    """One runc run and the cgroup it ran in, as the host names it (inside its cgroup
    namespace the container sees ``/``)."""

    def __init__(self, sp: Sandpool, command: str, memory: str | None = None,
                 timeout: float | None = None) -> None:  # fmt: skip
        seen: list[str] = []
        request = RunRequest(("sh", "-c", command), BUSYBOX, memory=memory, timeout=timeout)
        self.result = sp.run_request("performance", request, Stdio(capture=True),
                                     on_container=lambda c: seen.append(c.cgroup.rel))  # fmt: skip
        self.exit_code, self.oom_killed = self.result.exit_code, self.result.oom_killed
        self.cgroup = seen[0]


def test_consecutive_runs_reuse_one_slot_and_close_removes_it(
    own_sp: Sandpool, sandbox: Sandbox
) -> None:
    first = _Run(own_sp, "true")
    second = _Run(own_sp, "true")
    assert (first.exit_code, second.exit_code) == (0, 0)
    path = first.cgroup
    assert path.startswith(f"{sandbox.cgroup_parent}/slot-{os.getpid()}-")
    assert second.cgroup == path
    slot = path.split("/")[1]
    assert [p.name for p in _slots(sandbox)] and {p.name for p in _slots(sandbox)} == {slot}
    assert not [t for t in parent_cgroups(sandbox.cgroup_parent) if (t / slot / "ctr").exists()]
    own_sp.close()
    assert _slots(sandbox) == []


def test_an_oom_kill_in_a_slot_is_not_reported_for_the_next_run(
    own_sp: Sandpool, sandbox: Sandbox
) -> None:
    hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' x); echo survived"
    oomed = _Run(own_sp, hog, memory="30Mi", timeout=60)
    assert (oomed.exit_code, oomed.oom_killed) == (137, True)
    after = _Run(own_sp, "true", memory="128Mi")
    assert (after.exit_code, after.oom_killed) == (0, False)
    assert after.cgroup == oomed.cgroup
    smaller = own_sp.run("performance", ["true"], image=BUSYBOX, memory="16Mi")
    assert (smaller.exit_code, smaller.oom_killed) == (0, False)


CRASHING_OWNER = """
import os, sys
from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.worker.container import Stdio
from sandpool.worker.request import RunRequest
sp = Sandpool(LoadedConfig.load([sys.argv[1]], {}).resolved)
result = sp.run("performance", ["true"], image="builtin:busybox")
print(result.exit_code, flush=True)
os._exit(0)  # no close, no finalizers: as if killed
"""


def test_gc_removes_the_slots_of_a_dead_owner(sp: Sandpool, sandbox: Sandbox,
                                              no_leaks: Sandbox) -> None:  # fmt: skip
    done = subprocess.run([sys.executable, "-c", CRASHING_OWNER, str(sandbox.config_file)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.stdout.strip() == "0", done.stderr
    left = _slots(sandbox)
    assert left and all(f"/slot-{os.getpid()}-" not in str(p) for p in left)
    sp.gc()
    assert _slots(sandbox) == []
