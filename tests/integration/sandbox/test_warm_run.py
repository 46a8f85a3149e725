"""One-shot runs on warm containers (``sandbox.warm_run``), real runc and gVisor: a matching
``Sandpool.run`` claims a warm container and the pool is refilled; a mismatch runs cold;
consecutive warm runs are isolated (pristine filesystem and process table); exit code,
stdio, timeout, OOM and kill are told as for a cold run; a broken warm container is never
used; a SIGKILLed owner's warm container, mid-run, is removed by ``gc``. The ``warm``
fixture (its ``wait_warm`` started the warm pools) checks that nothing is left after close."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.sandbox.launch import load_sandbox_file, pid_alive
from sandpool.worker.request import RunResult
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.sandbox.test_warm import LOOK, SIZE, _stats, _warm_ids, warm

__all__ = ["warm"]  # the fixture, shared with test_warm
pytestmark = pytest.mark.timeout(240)
# The child (awk) doubles a string past the pools' 128Mi; the main sh lives on.
CHILD_HOG = "awk 'BEGIN { s = \"x\"; while (length(s) < 134217728) s = s s }'; sleep 30"


def _gone(sp: Sandpool, box: str, within: float = 30) -> bool:
    """Whether the container directory of ``box`` is removed within ``within`` s."""
    directory = Path(sp.config.state_dir) / "containers" / box
    deadline = time.monotonic() + within
    while directory.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_matching_run_claims_a_warm_container_and_it_is_refilled(
    warm: Sandpool, runtime: str
) -> None:
    """The run gets a warm container (its id), its stdin, stdout, stderr and exit code; the
    container is removed and the pool refilled; the claim is counted."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    with tempfile.TemporaryFile() as stdin:
        stdin.write(b"from stdin")
        stdin.seek(0)
        result = warm.run(pool, ["sh", "-c", "echo out; echo err >&2; cat; exit 3"],
                          stdin=stdin, env=["A=1"])  # fmt: skip
    assert result.id in ready
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\nfrom stdin", b"err\n")
    assert (result.oom_killed, result.timed_out, result.error) == (False, False, None)
    assert _gone(warm, result.id)
    assert warm.sandboxes.wait_warm(120)
    assert result.id not in _warm_ids(warm, pool)
    env = _run_warm(warm, pool, ["sh", "-c", "env | grep -c ^A=; echo $A $PATH"],
                    env=["A=1", "A=2"])  # fmt: skip
    assert (env.stdout or b"").startswith(b"1\n2 /"), env.stdout  # as a cold run: one A
    assert _stats(warm, pool)["claims"] == 2


@pytest.mark.root
@pytest.mark.runc
def test_runs_start_no_warm_pools(warm: Sandpool) -> None:
    """A process that never started its warm pools (a one-shot `sandpool run`) runs cold
    and starts none: it would only pay for them."""
    other = Sandpool(warm.config)
    try:
        result = other.run("warm-runc", ["true"])
        assert result.exit_code == 0 and result.id not in _warm_ids(warm, "warm-runc")
        assert not other.sandboxes.warm_started()
    finally:
        other.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_run_that_does_not_match_runs_cold(warm: Sandpool, runtime: str) -> None:
    """Other limits, another workdir: a cold container with what was asked for; the warm
    ones stay; each miss is counted."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    other = warm.run(pool, ["true"], memory="96Mi")
    assert other.id not in ready and other.exit_code == 0
    elsewhere = warm.run(pool, ["pwd"], workdir="/tmp")
    assert elsewhere.id not in ready and elsewhere.stdout == b"/tmp\n"
    assert _warm_ids(warm, pool) == ready
    assert (_stats(warm, pool)["misses"], _stats(warm, pool)["claims"]) == (2, 0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_consecutive_warm_runs_are_isolated(warm: Sandpool, runtime: str) -> None:
    """A warm run leaves files and a background process (and still returns at once); the
    next warm run sees a pristine container: no files, only the init and its own shell."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    began = time.monotonic()
    first = warm.run(pool, ["sh", "-c", "echo secret > /left-by-a; touch /tmp/a; sleep 1000 &"])
    assert first.id in ready and first.exit_code == 0
    assert time.monotonic() - began < 60  # the background sleep did not hold the run
    assert warm.sandboxes.wait_warm(120)
    ready = _warm_ids(warm, pool)
    seen = warm.run(pool, ["sh", "-c", LOOK])
    assert seen.id in ready and seen.id != first.id
    out = seen.stdout or b""
    assert b"secret" not in out and b"No such file" in out
    assert b"a\n" not in out.split(b"ps: ")[0]
    processes = [line for line in out.splitlines() if line.startswith(b"ps: ")]
    assert len(processes) == 2, out  # the init and this shell: nothing left by A


def _run_warm(sp: Sandpool, pool: str, command: list[str], **kwargs: object) -> RunResult:
    assert sp.sandboxes.wait_warm(120)
    ready = _warm_ids(sp, pool)
    result = sp.run(pool, command, **kwargs)  # type: ignore[arg-type]
    assert result.id in ready, "not a warm run"
    return result


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_warm_runs_tell_timeouts_ooms_and_kills(warm: Sandpool, runtime: str) -> None:
    """A timeout is 124 (timed_out), a child's OOM kill 137 (oom_killed), `sandpool kill`
    137, as for cold runs; a command that is not there is 127."""
    pool = f"warm-{runtime}"
    began = time.monotonic()
    timed = _run_warm(warm, pool, ["sleep", "30"], timeout=2)
    assert (timed.exit_code, timed.timed_out) == (124, True)
    assert time.monotonic() - began < 25
    oomed = _run_warm(warm, pool, ["sh", "-c", CHILD_HOG], timeout=90)
    assert (oomed.exit_code, oomed.oom_killed) == (137, True), oomed.stderr
    assert oomed.duration_ms < 25_000  # stopped at the OOM, not after the sh's sleep 30
    missing = _run_warm(warm, pool, ["no-such-command"])
    assert missing.exit_code == 127 and b"no-such-command" in (missing.stderr or b"")
    assert warm.sandboxes.wait_warm(120)
    ready = _warm_ids(warm, pool)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(warm.run(pool, ["sleep", "60"])))
    runner.start()
    deadline = time.monotonic() + 20
    while not (claimed := ready - _warm_ids(warm, pool)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    warm.kill(claimed.pop())
    runner.join(30)
    assert results and (results[0].exit_code, results[0].oom_killed) == (137, False)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_broken_warm_container_is_never_used_for_a_run(warm: Sandpool, runtime: str) -> None:
    """Warm containers killed behind the pool's back are discarded; the run works."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    state_dir = Path(warm.config.state_dir)
    for box in ready:
        warm.runtime(pool).kill(box, 9)
    for box in ready:
        saved = load_sandbox_file(state_dir / "containers" / box)
        deadline = time.monotonic() + 20
        while saved is not None and pid_alive(saved[1], saved[2]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    result = warm.run(pool, ["sh", "-c", "echo fine"])
    assert result.id not in ready and (result.exit_code, result.stdout) == (0, b"fine\n")
    assert all(_gone(warm, box) for box in ready)


OWNER = """
import os, signal, sys, threading, time
from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
sp = Sandpool(LoadedConfig.load([sys.argv[1]], {}).resolved)
sp.start_warm()
assert sp.sandboxes.wait_warm(120)
ready = {info.id for info in sp.sandboxes.list(state="warm", pool=sys.argv[2])}
threading.Thread(target=sp.run, args=(sys.argv[2], ["sleep", "1000"]), daemon=True).start()
while {info.id for info in sp.sandboxes.list(state="warm", pool=sys.argv[2])} >= ready:
    time.sleep(0.01)
time.sleep(1)
print(" ".join(ready), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_killed_owners_warm_run_is_removed_by_gc(warm: Sandpool, runtime: str) -> None:
    """An owner SIGKILLed during a warm run: `gc` removes its warm containers, the one that
    was running the command included (under runc its init already ended it)."""
    config = Path(warm.config.state_dir).parent / "warm-pools.yaml"
    proc = subprocess.run([sys.executable, "-c", OWNER, str(config), f"warm-{runtime}"],
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    boxes = proc.stdout.split()
    assert len(boxes) == SIZE[runtime]
    assert set(boxes) <= set(warm.gc())
    state_dir = Path(warm.config.state_dir)
    assert not any((state_dir / "containers" / box).exists() for box in boxes)


@pytest.mark.root
@pytest.mark.runc
def test_runc_sandbox_execs_start_through_the_init(warm: Sandpool) -> None:
    """A runc sandbox's execs (claimed warm, or cold) are forked by its init, not started
    by a `runc exec` (whose process is outside the container: parent pid 0); killing one
    and its children, its stdin and an exec as another user still work."""
    pool = "warm-runc"
    ready = _warm_ids(warm, pool)
    claimed = warm.create_sandbox(pool)
    cold = warm.create_sandbox(pool, memory="96Mi")
    assert claimed.id in ready and cold.id not in ready
    for sb in (claimed, cold):
        assert sb.exec(["sh", "-c", "echo $PPID"]).stdout == b"1\n"
        assert sb.exec(["id", "-u"], user="65534").stdout == b"65534\n"
        started = time.monotonic()
        assert sb.exec(["cat"], stdin=b"fed").stdout == b"fed"
        running = sb.start(["sh", "-c", "sleep 300 & sleep 300"])
        time.sleep(0.5)
        sb.kill(running)
        assert (sb.wait(running, timeout=30) or pytest.fail("not killed")).exit_code == 137
        assert time.monotonic() - started < 30
        assert b"sleep" not in (sb.exec(["ps", "-o", "args"]).stdout or b"")
        sb.terminate()
