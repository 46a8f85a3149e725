"""Warm pools on real runc and gVisor: claim, refill, a mismatch going cold, consecutive
claimants isolated (a claimed sandbox's filesystem and process table are pristine), a broken
warm sandbox replaced, shutdown, a SIGKILLed owner's warm sandboxes removed (gc, adopt), and
the CLI's view (`sandbox ls --warm`, `ps`) through `sandpool serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.sandbox import ExecRequest, SandboxRequest, SandboxState
from sandpool.sandbox.launch import disk_path, load_sandbox_file, pid_alive
from tests.integration.conftest import Sandbox as Installation
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.test_run_cli import SANDPOOL, Server

pytestmark = pytest.mark.timeout(240)
SIZE = {"runc": 2, "gvisor": 1}  # gVisor starts are slow here


def _pools(install: Installation) -> str:
    text = f"worker:\n  stateDir: {install.state_dir}\n  cgroupParent: {install.cgroup_parent}\n"
    text += "  pools:\n"
    for runtime, size in SIZE.items():
        extra = f"      containerRuntimeConfig:\n        gvisorRoot: {install.gvisor_root}\n"
        text += f"    warm-{runtime}:\n      containerRuntime: {runtime}\n"
        text += extra if runtime == "gvisor" else ""
        text += "      containerDefaults:\n        memory: 128Mi\n        ttl: 300\n"
        text += f"      warmPool:\n        size: {size}\n"
    return text


@pytest.fixture
def warm(sandbox: Installation) -> Iterator[Sandpool]:
    """A Sandpool with pools ``warm-runc`` (2 warm) and ``warm-gvisor`` (1 warm), filled; on
    close nothing may be left, warm sandboxes included."""
    config = sandbox.base / "warm-pools.yaml"
    config.write_text(_pools(sandbox))
    sp = Sandpool(LoadedConfig.load([str(config)], {}).resolved)
    try:
        assert sp.sandboxes.wait_warm(120), sp.sandboxes.warm_stats()
        yield sp
    finally:
        sp.close()
    assert sandbox.leftovers() == []


def _stats(sp: Sandpool, pool: str) -> dict[str, object]:
    [stats] = [s.to_json() for s in sp.sandboxes.warm_stats() if s.pool == pool]
    return stats


def _warm_ids(sp: Sandpool, pool: str) -> set[str]:
    return {info.id for info in sp.sandboxes.list(pool=pool, state="warm")}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_matching_create_claims_a_warm_sandbox_and_it_is_refilled(
    warm: Sandpool, runtime: str
) -> None:
    """A create with the pool's own image and limits gets a warm sandbox: labels, env (in
    every exec) and TTL are the claimant's, the TTL counted from the claim; the pool is
    refilled with a new one; warm sandboxes are not among the sandboxes listed."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    assert len(ready) == SIZE[runtime]
    assert all(i.state is SandboxState.WARM for i in warm.sandboxes.list(state="warm"))
    asked = time.time()
    sb = warm.create_sandbox(pool, env=["GREETING=hi there"], labels={"job": "7"}, ttl=60)
    assert sb.id in ready
    info = sb.info()
    assert (info.state, info.labels, info.ttl) == (SandboxState.RUNNING, {"job": "7"}, 60)
    assert info.ready_at is not None and info.ready_at >= asked
    assert info.deadline is not None and info.deadline >= asked + 60
    assert sb.exec(["sh", "-c", 'echo "$GREETING"']).stdout == b"hi there\n"
    assert sb.exec(["sh", "-c", "echo $GREETING"], env=["GREETING=own"]).stdout == b"own\n"
    assert [i.id for i in warm.sandboxes.list()] == [sb.id]
    assert warm.sandboxes.wait_warm(120)
    refilled = _warm_ids(warm, pool)
    assert sb.id not in refilled and len(refilled) == SIZE[runtime]
    stats = _stats(warm, pool)
    assert (stats["claims"], stats["misses"], stats["ready"]) == (1, 0, SIZE[runtime])
    assert isinstance(stats["refillMsMean"], float)
    sb.terminate()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_create_that_does_not_match_goes_cold(warm: Sandpool, runtime: str) -> None:
    """Other limits (memory) or workdir: a cold sandbox, with what was asked for; the warm
    ones stay in the pool; each miss is counted."""
    pool = f"warm-{runtime}"
    ready = _warm_ids(warm, pool)
    other = warm.sandboxes.create(SandboxRequest(pool, memory="96Mi", env=("A=1",)))
    assert other.id not in ready and other.state is SandboxState.RUNNING
    result = warm.sandboxes.exec(other.id, ExecRequest(("sh", "-c", "echo $A")))
    assert result.stdout == b"1\n"
    elsewhere = warm.sandboxes.create(SandboxRequest(pool, workdir="/tmp"))
    assert elsewhere.id not in ready and elsewhere.workdir == "/tmp"
    assert _warm_ids(warm, pool) == ready
    assert (_stats(warm, pool)["misses"], _stats(warm, pool)["claims"]) == (2, 0)
    warm.sandboxes.terminate(other.id)
    warm.sandboxes.terminate(elsewhere.id)


# Files A may have left, then every process's name (shell builtins only: nothing else runs)
LOOK = ("ls -A /tmp /root; cat /left-by-a 2>&1; "
        "for f in /proc/[0-9]*/comm; do read -r name < $f; echo ps: $name; done")  # fmt: skip


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_consecutive_claimants_are_isolated(warm: Sandpool, runtime: str) -> None:
    """A claimant leaves files and a background process; the next claimant of the same
    pool sees a pristine sandbox: no files, and only the init and its own shell running."""
    pool = f"warm-{runtime}"
    first = warm.create_sandbox(pool)
    pristine = first.exec(["sh", "-c", LOOK])
    first.exec(["sh", "-c", "echo secret > /left-by-a; touch /tmp/a /root/a"])
    first.start(["sleep", "1000"])
    first.terminate()
    assert warm.sandboxes.wait_warm(120)
    second = warm.create_sandbox(pool)
    assert second.id != first.id
    seen = second.exec(["sh", "-c", LOOK])
    assert b"secret" not in seen.stdout and b"No such file" in seen.stdout
    assert seen.stdout == pristine.stdout, (seen.stdout, pristine.stdout)
    processes = [line for line in seen.stdout.splitlines() if line.startswith(b"ps: ")]
    assert len(processes) == 2, seen.stdout  # the init and this shell: nothing left by A
    second.terminate()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_broken_warm_sandbox_is_never_handed_out(warm: Sandpool, runtime: str) -> None:
    """Warm sandboxes whose container was killed are discarded, not claimed (the create gets
    a working one, warm or cold), and the pool is refilled."""
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
    sb = warm.create_sandbox(pool)
    assert sb.id not in ready
    assert sb.exec(["true"]).exit_code == 0
    assert warm.sandboxes.wait_warm(120)
    assert not _warm_ids(warm, pool) & ready
    assert _stats(warm, pool)["discarded"] == len(ready)
    deadline = time.monotonic() + 20
    while any((state_dir / "containers" / box).exists() for box in ready):
        assert time.monotonic() < deadline, "the broken warm sandboxes were not removed"
        time.sleep(0.05)
    sb.terminate()


OWNER = """
import os, signal, sys
from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
sp = Sandpool(LoadedConfig.load([sys.argv[1]], {}).resolved)
assert sp.sandboxes.wait_warm(120)
print(" ".join(info.id for info in sp.sandboxes.list(state="warm")), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _crashed_owner(config: Path) -> list[str]:
    """The warm sandbox ids of a process that was then SIGKILLed."""
    proc = subprocess.run([sys.executable, "-c", OWNER, str(config)], capture_output=True,
                          text=True, timeout=180, check=False)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    return proc.stdout.split()


@pytest.mark.root
@pytest.mark.runc
@pytest.mark.runsc
def test_a_killed_owners_warm_sandboxes_are_removed(warm: Sandpool) -> None:
    """gc removes a SIGKILLed owner's warm sandboxes (container, disk, cgroup, directory);
    a restarting owner's adopt removes them too (never adopted: nobody may claim them)."""
    config = Path(warm.config.state_dir).parent / "warm-pools.yaml"
    state_dir = Path(warm.config.state_dir)
    first = _crashed_owner(config)
    assert len(first) == sum(SIZE.values())
    assert set(first) <= set(warm.gc())
    assert not any(disk_path(state_dir, box).exists() for box in first)
    second = _crashed_owner(config)
    adopted, removed = warm.sandboxes.adopt()
    assert (adopted, sorted(removed)) == ([], sorted(second))
    assert not any((state_dir / "containers" / box).exists() for box in second)


@pytest.mark.root
@pytest.mark.runc
def test_warm_sandboxes_through_serve(sandbox: Installation, tmp_path: Path) -> None:
    """`sandpool serve` fills a configuration's warm pools once it loads it: `sandbox ls
    --warm` lists them, `ps` shows them as warm, a create claims one; stopping the server
    removes them."""
    config = tmp_path / "warm.yaml"
    config.write_text(_pools(sandbox).replace("size: 1", "size: 0"))
    env = {**os.environ, "SANDPOOL_CONFIG": str(config),
           "SANDPOOL_SOCKET": str(tmp_path / "serve.sock")}  # fmt: skip
    server = Server(tmp_path / "serve.sock", tmp_path / "serve.log")

    def cli(*args: str) -> object:
        done = subprocess.run([SANDPOOL, *args, "--json"], capture_output=True, env=env,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    try:
        cli("sandbox", "ls")  # loads the configuration
        deadline = time.monotonic() + 60
        while len(listed := cli("sandbox", "ls", "--warm")) < 2:  # type: ignore[arg-type]
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.2)
        assert {row["state"] for row in listed} == {"warm"}  # type: ignore[attr-defined]
        ps = {row["id"]: row["state"] for row in cli("ps")}  # type: ignore[attr-defined]
        assert all(ps[row["id"]] == "warm" for row in listed)  # type: ignore[attr-defined]
        created = cli("sandbox", "create", "--pool", "warm-runc")
        assert created["id"] in {row["id"] for row in listed}  # type: ignore[index, attr-defined]
    finally:
        assert server.stop() == 0, server.log.read_text()
    assert sandbox.leftovers() == []
