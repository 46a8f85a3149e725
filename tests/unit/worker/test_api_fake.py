"""The ``Sandpool`` API and one container's lifecycle without root, runc or a cgroupfs.

``ContainerRun`` needs root for three things, replaced here by stand-ins: the overlay mount (a
plain ``rootfs`` directory instead), the size-limited disk (a plain directory) and the cgroup
(a ``CgroupV2`` over a tree in ``tmp_path``, whose ``memory.events`` a test can write to fake
an OOM kill; the warm slots of ``worker.slots`` live there too). The
runtime is ``sandpool.runtime.fake.FakeRuntime``, whose containers are Python subprocesses
reading ``process.args`` as a tiny script (``["exit", "3"]``, ``["echo", "hi"]``, …). What
this covers is the worker's own logic: exit classification, capture, timeouts, the start
timeout, OOM reporting, records, clean-up and the per-pool start gate. The real mounts,
cgroups and runtimes are covered by tests/integration.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import ContainerStartFailed, RuntimeTimeout
from sandpool.runtime.fake import FakeRuntime
from sandpool.worker import container, disk, slots
from sandpool.worker.cgroups import CgroupV2
from sandpool.worker.container import ContainerRun, Stdio
from sandpool.worker.limits import RUNC_START_PIDS
from sandpool.worker.records import ContainerRecord
from sandpool.worker.request import RunRequest, RunResult

POOL = ResolvedPool(
    name="default", mode="cpu", gpu_type="", runtime=None, container_runtime="gvisor",
    gvisor_platform=None, gvisor_root="/unused", gvisor_extra_args=(),
    container_start_concurrency=2, memory="64Mi", pids=32, cpu=None, timeout=None,
)  # fmt: skip


@dataclass(frozen=True)
class FakeImage:
    """The parts of an image a container needs."""

    reference: str
    rootfs: Path
    env: tuple[str, ...] = ("LANG=C.UTF-8",)
    working_dir: str = ""
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("echo", "from-image-cmd")


@dataclass
class FakeImages:
    """An image store that has every reference, all with the same empty rootfs."""

    rootfs: Path
    asked: list[str] = field(default_factory=list)

    def get(self, reference: str) -> FakeImage:
        self.asked.append(reference)
        return FakeImage(reference, self.rootfs)


class TmpCgroup(CgroupV2):
    """A v2 cgroup in a plain directory, whose files do not vanish with it as on cgroupfs."""

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.root / self.rel, ignore_errors=True)


@dataclass
class Harness:
    """A Sandpool wired to a FakeRuntime, with the paths a test looks at."""

    tmp: Path
    runtime: FakeRuntime
    cgroups: Path
    make: Callable[..., Sandpool]
    made: list[Sandpool]

    def containers(self) -> list[str]:
        root = self.tmp / "state" / "containers"
        return sorted(p.name for p in root.iterdir()) if root.exists() else []

    def started(self, sp: Sandpool) -> ContainerRecord:
        """Wait for the one container of ``sp`` to be running (its pid file written)."""
        _wait_for(lambda: bool(sp.ps()))
        record = sp.ps()[0]
        _wait_for((self.tmp / "state" / "containers" / record.id / "pid").exists)
        return record

    def cgroup(self, record: ContainerRecord) -> Path:
        return self.cgroups / record.cgroup_parent

    def slots(self) -> list[str]:
        """The idle and in-use slot cgroups, by name."""
        cgroups = self.cgroups / "sandpool"
        return sorted(p.name for p in cgroups.glob("slot-*")) if cgroups.exists() else []

    def leftovers(self) -> list[str]:
        """What is left once every Sandpool made here is closed."""
        for sp in self.made:
            sp.close()
        cgroups = self.cgroups / "sandpool"
        dirs = sorted(p.name for p in cgroups.iterdir() if p.is_dir()) if cgroups.exists() else []
        disks = self.tmp / "state" / "disks"
        left = self.containers() + dirs + (sorted(os.listdir(disks)) if disks.exists() else [])
        return left + [s.id for s in self.runtime.list()]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    cgroups = tmp_path / "cgroupfs"
    cgroups.mkdir()
    (tmp_path / "image").mkdir()

    def fake_mount(lower: Path, container_dir: Path) -> Path:
        merged = container_dir / "rootfs"
        merged.mkdir(parents=True)
        return merged

    monkeypatch.setattr(container, "mount_overlay", fake_mount)

    def fake_disk(path: Path, size: int) -> disk.WritableDisk:
        path.mkdir()
        return disk.WritableDisk(path, size)

    monkeypatch.setattr(disk, "make_disk", fake_disk)
    monkeypatch.setattr(disk, "remove_disk", lambda path: shutil.rmtree(path, ignore_errors=True))

    def open_tmp_cgroup(parent: str, name: str, root: Path = cgroups) -> TmpCgroup:
        return TmpCgroup(cgroups, parent, name)

    monkeypatch.setattr(container, "open_cgroup", open_tmp_cgroup)
    monkeypatch.setattr(slots, "open_cgroup", open_tmp_cgroup)
    box = {"runtime": FakeRuntime(tmp_path / "fake-root")}
    made: list[Sandpool] = []
    monkeypatch.setattr("sandpool.api.create_runtime", lambda pool, config: box["runtime"])

    def make(*, start_delay: float = 0.0, start_timeout: float = 30.0,
             **pool_changes: object) -> Sandpool:  # fmt: skip
        box["runtime"].start_delay = start_delay
        pool = replace(POOL, **pool_changes)  # type: ignore[arg-type]
        config = ResolvedConfig(runc_path="/x/runc", runsc_path="/x/runsc",
                                state_dir=str(tmp_path / "state"), default_image="fake:latest",
                                pools={"default": pool})  # fmt: skip
        images = FakeImages(tmp_path / "image")
        made.append(Sandpool(config, images=images, start_timeout=start_timeout))  # type: ignore[arg-type]
        return made[-1]

    yield Harness(tmp_path, box["runtime"], cgroups, make, made)
    for sp in made:
        sp.close()


def _in_background(sp: Sandpool, command: list[str], **kwargs: object) -> tuple[
    threading.Thread, dict[str, RunResult | BaseException]
]:  # fmt: skip
    box: dict[str, RunResult | BaseException] = {}

    def run() -> None:
        try:
            box["result"] = sp.run("default", command, **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the test thread
            box["result"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---- results ------------------------------------------------------------------------------


def test_exit_status_and_captured_streams(harness: Harness) -> None:
    sp = harness.make()
    out = sp.run("default", ["echo", "hi", "there"])
    assert (out.exit_code, out.stdout, out.stderr) == (0, b"hi there\n", b"")
    err = sp.run("default", ["stderr", "oops"])
    assert (err.exit_code, err.stdout, err.stderr) == (0, b"", b"oops\n")
    assert sp.run("default", ["exit", "3"]).exit_code == 3
    assert out.container_runtime == "fake"
    assert out.image == "fake:latest"
    assert out.start_latency_ms is not None and out.duration_ms >= out.start_latency_ms
    assert harness.leftovers() == []


def test_the_image_cmd_runs_when_no_command_is_given(harness: Harness) -> None:
    assert harness.make().run("default").stdout == b"from-image-cmd\n"


def test_stdin_reaches_the_container(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / "input").write_bytes(b"piped in\n")
    with (tmp_path / "input").open("rb") as stdin:
        result = harness.make().run("default", ["cat"], stdin=stdin)
    assert result.stdout == b"piped in\n"


def test_timeout_kills_the_container_and_exits_124(harness: Harness) -> None:
    began = time.monotonic()
    result = harness.make().run("default", ["sleep", "60"], timeout=0.5)
    assert (result.exit_code, result.timed_out, result.oom_killed) == (124, True, False)
    assert time.monotonic() - began < 10
    assert ("kill", result.id, "9") in harness.runtime.calls
    assert harness.leftovers() == []


def test_an_oom_kill_counted_in_memory_events_ends_the_run_with_137(harness: Harness) -> None:
    sp = harness.make()
    thread, box = _in_background(sp, ["sleep", "60"])
    events = harness.cgroup(harness.started(sp)) / "memory.events"
    events.write_text("oom 1\noom_kill 1\n")
    thread.join(timeout=15)
    result = box["result"]
    assert isinstance(result, RunResult)
    assert (result.exit_code, result.oom_killed, result.timed_out) == (137, True, False)
    assert harness.leftovers() == []


def test_command_not_found_exits_127_with_the_runtime_error(harness: Harness) -> None:
    result = harness.make().run("default", ["no-such-program"])
    assert result.exit_code == 127
    assert result.error is not None and "executable file not found" in result.error
    assert harness.leftovers() == []


@pytest.mark.parametrize("start_delay", [0.0, 30.0])
def test_stop_ends_the_run_with_137_before_or_after_the_start(
    harness: Harness, start_delay: float
) -> None:
    """``ContainerRun.stop()`` (a served client's Ctrl-C) is a kill, not a failed start."""
    sp = harness.make(start_delay=start_delay)
    request = RunRequest(("sleep", "60"))
    stopper = threading.Timer(0.3, lambda: box["container"].stop())
    box: dict[str, ContainerRun] = {}
    stopper.start()
    result = sp.run_request("default", request, Stdio(capture=True),
                            on_container=lambda c: box.setdefault("container", c))  # fmt: skip
    assert (result.exit_code, result.oom_killed, result.timed_out) == (137, False, False)
    assert result.error is None
    assert harness.leftovers() == []


def test_a_container_that_never_starts_raises_and_leaves_nothing(harness: Harness) -> None:
    with pytest.raises(ContainerStartFailed, match="could not start: rootfs is broken"):
        harness.make().run("default", ["fail-start", "rootfs", "is", "broken"])
    assert harness.leftovers() == []


def test_a_start_that_hangs_is_a_timeout_not_a_hang(harness: Harness) -> None:
    sp = harness.make(start_delay=30, start_timeout=0.5)
    began = time.monotonic()
    with pytest.raises(RuntimeTimeout, match=r"did not start within 0\.5s"):
        sp.run("default", ["exit", "0"])
    assert time.monotonic() - began < 10
    assert harness.leftovers() == []


# ---- warm parent cgroups -------------------------------------------------------------------


def _slot_of(sp: Sandpool, harness: Harness, seconds: str, *, oom: bool) -> tuple[str, RunResult]:
    """Sleep in a container (OOM-killed once running, with ``oom``); its slot and result."""
    thread, box = _in_background(sp, ["sleep", seconds])
    slot = harness.started(sp).cgroup_parent
    if oom:
        (harness.cgroups / slot / "memory.events").write_text("oom 1\noom_kill 1\n")
    thread.join(timeout=15)
    result = box["result"]
    assert isinstance(result, RunResult)
    return slot, result


def test_consecutive_runs_share_one_slot_and_an_oom_stays_with_its_run(harness: Harness) -> None:
    sp = harness.make()
    slot, oomed = _slot_of(sp, harness, "60", oom=True)
    assert (oomed.exit_code, oomed.oom_killed) == (137, True)
    again, after = _slot_of(sp, harness, "0.3", oom=False)
    assert again == slot
    assert (after.exit_code, after.oom_killed) == (0, False)
    assert harness.slots() == [slot.rpartition("/")[2]]
    sp.close()
    assert harness.slots() == []
    assert harness.leftovers() == []


# ---- what a running container has ----------------------------------------------------------


def test_record_limits_and_spec_while_running(harness: Harness) -> None:
    sp = harness.make()
    thread, box = _in_background(sp, ["sleep", "60"], env=["GREETING=hi"], workdir="/tmp",
                                 memory="32Mi", pids=8)  # fmt: skip
    record = harness.started(sp)
    assert (record.pool, record.runtime, record.command) == ("default", "fake", ("sleep", "60"))
    assert record.owner_alive()
    cgroup = harness.cgroup(record)
    assert (cgroup / "memory.max").read_text() == str(32 << 20)
    # the parent has room for the runtime's start; the exact limit is the runtime's to set
    assert (cgroup / "pids.max").read_text() == str(8 + RUNC_START_PIDS)
    spec_file = harness.tmp / "state" / "containers" / record.id / "config.json"
    spec = json.loads(spec_file.read_text())
    assert spec["linux"]["resources"]["pids"] == {"limit": 8}
    assert spec["process"]["cwd"] == "/tmp"
    assert "GREETING=hi" in spec["process"]["env"] and "LANG=C.UTF-8" in spec["process"]["env"]
    assert spec["linux"]["cgroupsPath"] == f"/{record.cgroup_parent}/ctr"
    assert record.cgroup_parent.startswith("sandpool/slot-")
    harness.runtime.kill(record.id)  # as `sandpool kill` would
    thread.join(timeout=15)
    assert isinstance(box["result"], RunResult) and box["result"].exit_code == 137
    assert box["result"].oom_killed is False
    assert sp.ps() == []


def test_pool_defaults_apply_when_the_request_has_none(harness: Harness) -> None:
    sp = harness.make(memory="48Mi", pids=5)
    thread, _ = _in_background(sp, ["sleep", "60"])
    record = harness.started(sp)
    container_id = record.id
    cgroup = harness.cgroup(record)
    assert (cgroup / "memory.max").read_text() == str(48 << 20)
    assert (cgroup / "pids.max").read_text() == str(5 + RUNC_START_PIDS)
    harness.runtime.kill(container_id)
    thread.join(timeout=15)


# ---- the start gate -------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "runs"), [(2, 6), (3, 6)])
def test_no_more_starts_in_flight_than_container_start_concurrency(
    harness: Harness, limit: int, runs: int
) -> None:
    sp = harness.make(start_delay=0.3, container_start_concurrency=limit)
    threads = [_in_background(sp, ["exit", "0"]) for _ in range(runs)]
    for thread, _ in threads:
        thread.join(timeout=30)
    results = [box["result"] for _, box in threads]
    assert all(isinstance(r, RunResult) and r.exit_code == 0 for r in results), results
    assert harness.runtime.max_starting == limit


def test_started_containers_do_not_hold_the_gate(harness: Harness) -> None:
    """Two long-running containers, then a third run with a gate of two still starts."""
    sp = harness.make(container_start_concurrency=2)
    long = [_in_background(sp, ["sleep", "60"], timeout=3) for _ in range(2)]
    _wait_for(lambda: len(sp.ps()) == 2)
    began = time.monotonic()
    assert sp.run("default", ["echo", "third"]).stdout == b"third\n"
    assert time.monotonic() - began < 2.5  # did not wait for the sleeping ones
    for thread, _ in long:
        thread.join(timeout=15)


@pytest.mark.parametrize("failing", ["creation", "on_container"])
def test_a_container_that_cannot_be_created_gives_back_its_permit_and_slot(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The start gate's permit and the warm slot go back when creating (or handing out) the
    ``ContainerRun`` raises: with one permit, the next run still starts, and no slot is lost."""
    sp = harness.make(container_start_concurrency=1)
    assert sp.run("default", ["echo", "warm"]).stdout == b"warm\n"
    [slot] = harness.slots()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    def refuse(container: ContainerRun) -> None:
        raise RuntimeError("injected")

    request = RunRequest(("echo", "never"))
    with monkeypatch.context() as patch:
        if failing == "creation":  # the last thing the constructor does before the slot
            patch.setattr(container, "RunResult", broken)
        with pytest.raises(RuntimeError, match="injected"):
            sp.run_request("default", request, Stdio(capture=True), on_container=refuse)
    thread, box = _in_background(sp, ["echo", "again"])
    thread.join(timeout=10)
    assert not thread.is_alive(), "the failed creation kept the only start permit"
    assert isinstance(box["result"], RunResult) and box["result"].stdout == b"again\n"
    assert harness.slots() == [slot]
    assert harness.leftovers() == []
