"""What a state dir owns, with real containers: ``gc`` and the start-of-run reconcile leave
other configurations' containers alone, never take a starting container for an orphan, and a
stop or kill hits only the container it names, not the next one in its warm cgroup slot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.runtime.base import ContainerRuntime, ContainerState
from sandpool.worker import recovery
from sandpool.worker.container import ContainerRun, Stdio
from sandpool.worker.records import containers_dir
from sandpool.worker.request import RunRequest, RunResult
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]
SANDPOOL = str(Path(sys.executable).parent / "sandpool")
BUSYBOX = "builtin:busybox"
Started = tuple[ContainerRun, threading.Thread, dict[str, Any]]  # a run in a thread, and its box


class OtherConfig:
    """Configuration B: a state dir of its own, but the session's gVisor root and cgroup
    parent (as two configurations leaving ``gvisorRoot`` and ``cgroupParent`` at their
    defaults share ``/run/gvisor`` and ``sandpool``)."""

    def __init__(self, sandbox: Sandbox, base: Path) -> None:
        self.sandbox, self.base = sandbox, base
        self.state_dir = base / "state-b"
        self.file = base / "b.yaml"
        text = sandbox.config_file.read_text()
        self.file.write_text(text.replace(f"stateDir: {sandbox.state_dir}\n",
                                          f"stateDir: {self.state_dir}\n"))  # fmt: skip
        self.env = {**os.environ, "SANDPOOL_SOCKET": str(base / "none.sock")}  # in-process

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SANDPOOL, *args], capture_output=True, text=True, env=self.env,
                              timeout=120, check=False)  # fmt: skip

    def running(self, pool: str) -> subprocess.Popen[str]:
        """An in-process ``sandpool run -c B`` whose container has started and sleeps."""
        argv = [SANDPOOL, "run", "-c", str(self.file), "--pool", pool, "--", "sh", "-c",
                "echo up; sleep 60"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=self.env)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        return proc

    def status(self, pool: str, container_id: str) -> str:
        with Sandpool(LoadedConfig.load([str(self.file)], {}).resolved) as sp:
            return sp.runtime(pool).state(container_id).status

    def leftovers(self) -> list[str]:
        runc = subprocess.run(["runc", "--root", str(self.state_dir / "runc"), "list", "-q"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        found = [f"runc container {c}" for c in runc.stdout.split()]
        found += [f"state dir {d}" for d in containers_dir(self.state_dir).glob("*")]
        with open("/proc/self/mountinfo") as info:
            found += [f"mount {ln.split()[4]}" for ln in info if str(self.base) in ln.split()[4]]
        return found


@pytest.mark.parametrize("owner", ["alive", "dead"])
@pytest.mark.parametrize("pool", POOLS)
def test_gc_of_one_config_leaves_another_configs_container_running(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path, pool: str, owner: str
) -> None:
    """``gc -c A`` (and A's start-of-run reconcile) with B's container running in the shared
    gVisor root and cgroup parent: B's container is not A's to remove, even once B's owner
    died; ``gc -c B`` is what removes it then."""
    b = OtherConfig(sandbox, tmp_path)
    proc = b.running(pool)
    [row] = [line.split()[0] for line in b.cli("ps", "-c", str(b.file)).stdout.splitlines()[1:]]
    if owner == "dead":
        proc.kill()  # its container runs on, in a slot named after a dead process
        proc.wait(timeout=30)
    gc_a = b.cli("gc", "-c", str(sandbox.config_file))
    assert (gc_a.returncode, gc_a.stdout) == (0, "gc: 0 container(s) removed\n"), gc_a.stderr
    run_a = b.cli("run", "-c", str(sandbox.config_file), "--pool", pool, "--", "true")
    assert run_a.returncode == 0, run_a.stderr
    assert b.status(pool, row) == "running"
    if owner == "alive":
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 143
    else:
        gc_b = b.cli("gc", "-c", str(b.file))
        assert gc_b.stdout.endswith("gc: 1 container(s) removed\n"), gc_b.stderr
        proc.communicate(timeout=60)  # the container is gone: its pipes close
    assert b.leftovers() == []


class StartsAContainerWhenListed:
    """A runtime whose ``list`` first starts a container of ``sp`` (once): a container that
    starts while ``gc`` is looking for orphans, at the worst moment, every time."""

    def __init__(self, runtime: ContainerRuntime, sp: Sandpool, pool: str) -> None:
        self.runtime, self.sp, self.pool = runtime, sp, pool
        self.started: list[Started] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)

    def list(self) -> list[ContainerState]:
        if not self.started:
            self.started.append(start_sleeping(self.sp, self.pool))
        return self.runtime.list()


def start_sleeping(sp: Sandpool, pool: str) -> Started:
    """A container of ``sp`` sleeping for a minute, started (pid file written)."""
    got: list[ContainerRun] = []
    box: dict[str, Any] = {}
    request = RunRequest(("sleep", "60"), BUSYBOX)

    def run() -> None:
        box["result"] = sp.run_request(pool, request, Stdio(capture=True), on_container=got.append)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (got and got[0].files.pid_file.exists()):
        assert thread.is_alive() and time.monotonic() < deadline, "the container did not start"
        time.sleep(0.01)
    return got[0], thread, box


def finished(thread: threading.Thread, box: dict[str, Any]) -> RunResult:
    thread.join(timeout=60)
    assert not thread.is_alive()
    result: RunResult = box["result"]
    return result


@pytest.mark.parametrize("pool", POOLS)
def test_gc_never_takes_a_container_starting_during_its_scan_for_an_orphan(
    sp: Sandpool, no_leaks: Sandbox, monkeypatch: pytest.MonkeyPatch, pool: str
) -> None:
    wrappers: list[StartsAContainerWhenListed] = []
    real = recovery.create_runtime

    def create(pool_config: Any, config: Any) -> Any:
        runtime = real(pool_config, config)
        if pool_config.name != pool:
            return runtime
        wrappers.append(StartsAContainerWhenListed(runtime, sp, pool))
        return wrappers[-1]

    monkeypatch.setattr(recovery, "create_runtime", create)
    removed = recovery.collect_garbage(sp.config)
    [(container, thread, box)] = wrappers[0].started
    assert container.id not in removed
    assert sp.runtime(pool).state(container.id).status == "running"
    container.stop()
    assert finished(thread, box).exit_code == 137


@pytest.fixture
def own_sp(sandbox: Sandbox, no_leaks: Sandbox) -> Iterator[Sandpool]:
    """A Sandpool of this test alone: its one idle slot is the one the next run takes."""
    with Sandpool(LoadedConfig.load([str(sandbox.config_file)], {}).resolved) as pool:
        yield pool


@pytest.mark.parametrize("pool", POOLS)
def test_stopping_a_finished_run_does_not_kill_the_next_container_in_its_slot(
    own_sp: Sandpool, pool: str
) -> None:
    first: list[ContainerRun] = []
    done = own_sp.run_request(pool, RunRequest(("true",), BUSYBOX), Stdio(capture=True),
                              on_container=first.append)  # fmt: skip
    assert done.exit_code == 0
    second, thread, box = start_sleeping(own_sp, pool)
    assert second.cgroup.rel == first[0].cgroup.rel  # the finished run's slot, warm again
    first[0].stop()  # e.g. a served client's signal that arrives just after its run ended
    thread.join(timeout=3)
    assert thread.is_alive(), "stopping the finished run killed the next container in its slot"
    second.stop()
    assert finished(thread, box).exit_code == 137


@pytest.mark.parametrize("pool", POOLS)
def test_a_kill_racing_the_end_of_its_container_does_not_kill_the_next_one(
    own_sp: Sandpool, monkeypatch: pytest.MonkeyPatch, pool: str
) -> None:
    """``sandpool kill``: the record is there when checked; then the container ends and its
    slot goes to the next container before the kill is over."""
    first, first_thread, first_box = start_sleeping(own_sp, pool)
    [(directory, record)] = [(d, r) for d, r in recovery.load_records(own_sp.state_dir)
                             if r is not None and r.id == first.id]  # fmt: skip
    later: list[Started] = []

    def hand_the_slot_over() -> None:
        finished(first_thread, first_box)
        later.append(start_sleeping(own_sp, pool))

    real_open = recovery.open_cgroup

    def open_once_the_slot_changed_hands(parent: str, name: str, *rest: Any) -> Any:
        if not later:
            hand_the_slot_over()
        return real_open(parent, name, *rest)

    monkeypatch.setattr(recovery, "open_cgroup", open_once_the_slot_changed_hands)
    own_sp.kill(first.id)
    if not later:  # the kill swept nothing: let the tail of the same kill arrive late
        hand_the_slot_over()
        recovery.stop_container(record, directory)
    assert finished(first_thread, first_box).exit_code == 137
    [(second, thread, box)] = later
    assert second.cgroup.rel == record.cgroup_parent  # the killed container's slot
    thread.join(timeout=3)
    assert thread.is_alive(), "the kill of a finished container killed the next one in its slot"
    second.stop()
    assert finished(thread, box).exit_code == 137
