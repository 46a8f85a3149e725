"""Checkpoint and restore of a sandbox (CRIU through runc) on real containers.

CRIU 3.17 works on Debian's 6.1 kernel, so the round trip runs in the VM stage
(``tests/vm``); on a kernel where CRIU fails (this project's 6.18 hosts: ``criu check``
fails) the failure must be one clear error quoting CRIU's log, with the sandbox still
running. gVisor says "not supported" on any kernel.
"""

from __future__ import annotations

import functools
import subprocess
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.errors import CheckpointFailed, OperationNotSupported, SandboxStateError
from sandpool.sandbox import Sandbox, SandboxState
from sandpool.sandbox.checkpoint import CHECKPOINT_DIR

pytestmark = [pytest.mark.timeout(240), pytest.mark.root]
BUSYBOX = "builtin:busybox"  # small: the VM stage unpacks it in seconds
# A process whose state lives only in its memory: its pid (inside) and a counter, written
# out every 0.2 s. A process started afresh would have another pid and count from 1.
COUNTER = ("sh -c 'i=0; while sleep 0.2; do i=$((i+1)); echo \"$$ $i\" > /count; done' "
           "</dev/null >/dev/null 2>&1 &")  # fmt: skip


@functools.cache
def criu_works() -> bool:
    """Whether ``criu check`` passes on this kernel (Debian 6.1: yes; 6.18: no)."""
    try:
        done = subprocess.run(["criu", "check"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _count(sb: Sandbox) -> tuple[int, int]:
    pid, count = sb.files.read("/count").split()
    return int(pid), int(count)


def _count_reaches(sb: Sandbox, at_least: int, within: float = 30.0) -> tuple[int, int]:
    deadline = time.monotonic() + within
    while True:
        try:
            pid, count = _count(sb)
            if count >= at_least:
                return pid, count
        except (SandboxStateError, ValueError):
            pass  # not written yet, or caught half-written
        assert time.monotonic() < deadline, f"the counter did not reach {at_least}"
        time.sleep(0.2)


def _box_dir(sp: Sandpool, sb: Sandbox) -> Path:
    return Path(sp.config.state_dir) / "containers" / sb.id


@pytest.mark.runc
def test_a_restored_sandbox_goes_on_with_its_processes_memory(boxes: Sandpool) -> None:
    """Checkpoint stops every process (nothing runs, exec is refused naming the state);
    restore brings the same process back (same pid inside) counting on from where it was;
    exec works again; a second checkpoint followed by terminate leaves nothing."""
    if not criu_works():
        pytest.skip("`criu check` fails on this kernel (see the README: CRIU needs e.g. 6.1)")
    sb = boxes.create_sandbox("runc", image=BUSYBOX)
    assert sb.exec(["sh", "-c", COUNTER]).exit_code == 0
    pid, _ = _count_reaches(sb, 3)
    assert sb.checkpoint().state is SandboxState.CHECKPOINTED
    frozen = (_box_dir(boxes, sb) / "rootfs" / "count").read_text()  # the overlay, from the host
    time.sleep(1)
    assert (_box_dir(boxes, sb) / "rootfs" / "count").read_text() == frozen, "still counting"
    with pytest.raises(SandboxStateError, match=r"checkpointed.*restore it first"):
        sb.exec(["true"])
    at_checkpoint = int(frozen.split()[1])
    assert sb.restore().state is SandboxState.RUNNING
    assert not (_box_dir(boxes, sb) / CHECKPOINT_DIR).exists()
    again_pid, count = _count_reaches(sb, at_checkpoint + 2)
    assert again_pid == pid, "another process is counting: the restored one was lost"
    assert count < at_checkpoint + 100, "the counter jumped: not the restored process"
    assert sb.exec(["cat", "/count"]).exit_code == 0
    assert sb.checkpoint().state is SandboxState.CHECKPOINTED
    assert sb.terminate().state is SandboxState.TERMINATED  # ``boxes`` checks nothing is left


@pytest.mark.runc
def test_checkpoint_is_refused_while_an_exec_runs(boxes: Sandpool) -> None:
    """An exec's pipes lead to sandpool's process: refused, naming the fix; it runs on."""
    sb = boxes.create_sandbox("runc", image=BUSYBOX)
    exec_id = sb.start(["sleep", "60"])
    with pytest.raises(SandboxStateError, match=r"1 exec.*still running.*kill them"):
        sb.checkpoint()
    assert sb.info().state is SandboxState.RUNNING
    sb.kill(exec_id)
    assert sb.exec(["true"]).exit_code == 0


@pytest.mark.runc
def test_where_criu_fails_the_error_quotes_its_log_and_the_sandbox_runs_on(
    boxes: Sandpool,
) -> None:
    """On a kernel CRIU 3.17 cannot handle (6.18: ``vdso: Unexpected rt vDSO area bounds``)
    the one error quotes CRIU's own error line and names its log; nothing was stopped."""
    if criu_works():
        pytest.skip("`criu check` passes on this kernel: the round trip is tested instead")
    sb = boxes.create_sandbox("runc", image=BUSYBOX)
    with pytest.raises(CheckpointFailed) as failed:
        sb.checkpoint()
    message = str(failed.value)
    assert f"cannot checkpoint sandbox {sb.id}: CRIU failed: Error (" in message, message
    assert "dump.log" in message and "criu check" in message, message
    assert sb.info().state is SandboxState.RUNNING
    assert sb.exec(["echo", "still here"]).stdout == b"still here\n"


@pytest.mark.runsc
def test_gvisor_says_checkpoint_is_not_supported(boxes: Sandpool) -> None:
    """gVisor: one clear error naming the runtime and the fix; the sandbox runs on."""
    sb = boxes.create_sandbox("gvisor", image=BUSYBOX)
    with pytest.raises(OperationNotSupported, match=r"not supported by gvisor.*runc"):
        sb.checkpoint()
    assert sb.info().state is SandboxState.RUNNING
    with pytest.raises(SandboxStateError, match="it is running"):
        sb.restore()
    assert sb.exec(["true"]).exit_code == 0
