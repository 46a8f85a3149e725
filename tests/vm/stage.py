"""Starting the VM stage: the guest tests, the job description and the boot. The boot starts as
soon as the session's collection ends (``tests/vm/conftest.py``), so that the guest's tests run
while the host's do: the host's integration tests mostly wait (on containers, servers, time
limits) and leave much of the 2-core machine idle, and the stage needs minutes of emulation.
The stage's test then only waits for the guest to power off. ``SANDPOOL_VM_EARLY=0`` boots at
the stage's own turn instead (to time the stage alone)."""

from __future__ import annotations

import os
import shlex
import shutil
import time

from tests.vm.kernel import CACHE, build_initramfs, fetch_kernel
from tests.vm.machine import Boot, pick_accel, qemu_binary

__all__ = ["EARLY", "GUEST_TESTS", "LAYOUTS", "Started", "start", "take_early"]

LAYOUTS = ("host", "pod")  # SANDPOOL_VM_LAYOUTS=pod runs one (a failing test's checks miss)
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
OUT = CACHE / "out"  # the guest's read-write share: job.env, its JUnit XML per layout


class Started:
    """A boot under way, since ``started`` (time.monotonic)."""

    def __init__(self, boot: Boot, started: float) -> None:
        self.boot, self.started = boot, started


EARLY: list[Started] = []  # the boot conftest.py started at collection, until the stage takes it


def take_early() -> Started | None:
    """The boot started at collection, if any (the stage's fixture takes it once)."""
    return EARLY.pop() if EARLY else None


def start() -> Started:
    """Build the initramfs and the job, boot the VM; VmUnavailable says what is missing."""
    qemu_binary()
    kernel = fetch_kernel()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    initramfs = build_initramfs(kernel, OUT / "initramfs.cpio.gz")
    accel = pick_accel(kernel, CACHE / "accel")
    tests = os.environ.get("SANDPOOL_VM_TESTS", "").split() or GUEST_TESTS  # a subset, by hand
    args = ["-p", "no:cacheprovider", "-q", "-rfE", "--color=no", *tests]
    layouts = os.environ.get("SANDPOOL_VM_LAYOUTS", " ".join(LAYOUTS))
    (OUT / "job.env").write_text(
        f"LAYOUTS={shlex.quote(layouts)}\nPYTEST_ARGS={shlex.quote(' '.join(args))}\n"
    )
    started = time.monotonic()
    return Started(Boot(kernel, initramfs, OUT, CACHE / "console.log", accel), started)


def early_start_wanted() -> bool:
    """Whether this session may boot the VM before the stage's turn: not in a pytest-xdist
    worker, where every worker collects the stage and would boot a VM of its own (``./test.sh``
    runs the stage in a pytest process of its own instead)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return False
    return os.environ.get("SANDPOOL_VM_EARLY", "1") != "0" and can_run_here() is None


def can_run_here() -> str | None:
    """Why the stage does not run in this process (None: it does)."""
    if os.environ.get("SANDPOOL_IN_VM"):
        return "already inside the test VM"
    if os.geteuid() != 0:
        return "needs root (the 9p shares pass the host's file owners through)"
    return None
