"""A sandbox's life on real runc and gVisor: TTL (also during an exec), idle timeout, pause
and resume, list filters, and what happens after its owner is SIGKILLed (adopt, gc)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.sandbox import ExecRequest, SandboxInfo, SandboxState
from sandpool.sandbox.launch import disk_path, load_sandbox_file, pid_alive
from tests.integration.sandbox.conftest import RUNTIMES

pytestmark = pytest.mark.timeout(180)


def _wait_state(sp: Sandpool, sandbox_id: str, state: SandboxState,
                within: float = 20.0) -> SandboxInfo:  # fmt: skip
    deadline = time.monotonic() + within
    while (info := sp.sandboxes.get(sandbox_id)).state is not state:
        assert time.monotonic() < deadline, f"{sandbox_id} still {info.state} after {within}s"
        time.sleep(0.05)
    return info


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pool_ttl_ends_the_sandbox_during_an_exec(boxes: Sandpool, runtime: str) -> None:
    """The pool's ttl (2 s) counts from ready; the exec running then ends 137 and says why;
    a ttl given at create overrides the pool's."""
    longer = boxes.create_sandbox(f"ttl-{runtime}", ttl=120)
    assert longer.info().ttl == 120
    sb = boxes.create_sandbox(f"ttl-{runtime}")
    info = sb.info()
    assert info.ttl == 2 and info.ready_at is not None
    result = sb.exec(["sleep", "60"])
    assert (result.exit_code, result.sandbox_ended) == (137, "ttl"), result
    final = _wait_state(boxes, sb.id, SandboxState.TERMINATED)
    assert final.reason is not None and final.reason.value == "ttl"
    assert final.ended_at is not None and 1.5 <= final.ended_at - info.ready_at < 15
    assert longer.info().state is SandboxState.RUNNING
    longer.terminate()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_idle_timeout_stops_while_paused_and_running_execs_count(
    boxes: Sandpool, runtime: str
) -> None:
    """With a 1.5 s idle timeout: a 3 s exec keeps the sandbox alive, a pause stops the idle
    clock, and after resume it ends for idleness."""
    sb = boxes.create_sandbox(runtime, idle_timeout=1.5)
    assert sb.exec(["sleep", "3"]).exit_code == 0
    assert sb.info().state is SandboxState.RUNNING
    sb.pause()
    time.sleep(3)
    assert sb.info().state is SandboxState.PAUSED
    resumed = sb.resume()
    final = _wait_state(boxes, sb.id, SandboxState.TERMINATED)
    assert final.reason is not None and final.reason.value == "idle"
    assert final.ended_at is not None and final.ended_at - resumed.last_activity >= 1.4


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ttl_keeps_running_while_paused(boxes: Sandpool, runtime: str) -> None:
    """A paused sandbox still ends at its TTL."""
    sb = boxes.create_sandbox(runtime, ttl=1.5)
    sb.pause()
    final = _wait_state(boxes, sb.id, SandboxState.TERMINATED)
    assert final.reason is not None and final.reason.value == "ttl"


@pytest.mark.root
@pytest.mark.runc
def test_list_filters(boxes: Sandpool) -> None:
    """list() by pool, label and state; terminated ones stay listed with their reason."""
    a = boxes.create_sandbox("runc", labels={"job": "7", "team": "x"})
    b = boxes.create_sandbox("small-runc", labels={"job": "8"})
    b.pause()
    listed = boxes.sandboxes.list
    assert [i.id for i in listed(labels={"job": "7"})] == [a.id]
    assert [i.id for i in listed(pool="small-runc")] == [b.id]
    assert [i.id for i in listed(state=SandboxState.PAUSED)] == [b.id]
    assert {i.id for i in listed()} == {a.id, b.id}
    a.terminate()
    assert [i.id for i in listed(state="terminated")] == [a.id]
    b.resume()
    b.terminate()


OWNER = """
import os, signal, sys
from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
sp = Sandpool(LoadedConfig.load([sys.argv[1]], {}).resolved)
ids = []
for n in range(int(sys.argv[3])):
    sb = sp.create_sandbox(sys.argv[2], labels={"n": str(n)})
    sb.files.write("/kept", b"written before the crash")
    ids.append(sb.id)
print(" ".join(ids), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _crashed_owner(config: Path, pool: str, count: int) -> list[str]:
    """Sandbox ids created by a process that was then SIGKILLed."""
    proc = subprocess.run([sys.executable, "-c", OWNER, str(config), pool, str(count)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_restarted_owner_adopts_live_sandboxes(boxes: Sandpool, runtime: str) -> None:
    """After its owner was SIGKILLed a sandbox keeps running; ``adopt`` takes it over (exec
    and files work, its state and labels are back) and removes the one that died meanwhile."""
    config = Path(boxes.config.state_dir).parent / "sandbox-pools.yaml"
    alive, dead = _crashed_owner(config, runtime, 2)
    boxes.runtime(runtime).kill(dead, 9)
    saved = load_sandbox_file(Path(boxes.config.state_dir) / "containers" / dead)
    assert saved is not None
    deadline = time.monotonic() + 20
    while pid_alive(saved[1], saved[2]):  # gVisor's sandbox process takes a moment to go
        assert time.monotonic() < deadline
        time.sleep(0.05)
    adopted, removed = boxes.sandboxes.adopt()
    assert (adopted, removed) == ([alive], [dead])
    info = boxes.sandboxes.get(alive)
    assert (info.state, info.labels) == (SandboxState.RUNNING, {"n": "0"})
    result = boxes.sandboxes.exec(alive, ExecRequest(("cat", "/kept")))
    assert result.stdout == b"written before the crash"
    state_dir = Path(boxes.config.state_dir)
    assert not (state_dir / "containers" / dead).exists()
    assert not disk_path(state_dir, dead).exists()
    boxes.sandboxes.terminate(alive)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_gc_removes_a_dead_owners_sandboxes(boxes: Sandpool, runtime: str) -> None:
    """Without a restart, ``gc`` removes the sandbox of a SIGKILLed owner: container, overlay,
    disk, cgroup and directory (the fixture checks that nothing is left)."""
    config = Path(boxes.config.state_dir).parent / "sandbox-pools.yaml"
    [sandbox_id] = _crashed_owner(config, runtime, 1)
    assert sandbox_id in boxes.gc()
    assert not disk_path(Path(boxes.config.state_dir), sandbox_id).exists()


@pytest.mark.root
@pytest.mark.runc
def test_sandpool_kill_ends_a_sandbox_as_killed(boxes: Sandpool) -> None:
    """`sandpool kill <id>` (``Sandpool.kill``) works on a sandbox too: its owner sees it die
    and reports it terminated, reason killed, and removes it."""
    sb = boxes.create_sandbox("runc")
    assert sb.id in {record.id for record in boxes.ps()}
    boxes.kill(sb.id)
    final = _wait_state(boxes, sb.id, SandboxState.TERMINATED)
    assert final.reason is not None and final.reason.value == "killed"
