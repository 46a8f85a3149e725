"""The sandpool-owned parent cgroup, against a fake cgroupfs tree in ``tmp_path``.

A real cgroupfs creates a cgroup's interface files with its directory and removes them with
it; a plain directory does not, so these tests create or delete those files themselves where
the kernel would.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.worker.cgroups import CgroupV1, CgroupV2, detect_cgroup_version, open_cgroup


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _later(delay: float, action: object) -> threading.Thread:
    def fire() -> None:
        time.sleep(delay)
        action()  # type: ignore[operator]

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def v2(tmp_path: Path) -> Iterator[CgroupV2]:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    cgroup = CgroupV2(tmp_path, "sandpool", "sp-1")
    yield cgroup
    cgroup.close()


def _kernel_made_oom_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel makes ``memory.oom_control`` with the cgroup; here it appears on open."""
    real_open = os.open

    def open_creating(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if str(path).endswith("memory.oom_control"):
            return real_open(path, flags | os.O_CREAT, 0o644)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_creating)


@pytest.fixture
def v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CgroupV1]:
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
    _kernel_made_oom_control(monkeypatch)
    cgroup = CgroupV1(tmp_path, "sandpool", "sp-1")
    yield cgroup
    cgroup.close()


# ---- version detection -------------------------------------------------------------------


def test_detect_version_from_cgroup_controllers(tmp_path: Path) -> None:
    assert detect_cgroup_version(tmp_path) == 1
    assert isinstance(open_cgroup("sandpool", "sp-1", tmp_path), CgroupV1)
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    assert detect_cgroup_version(tmp_path) == 2
    assert isinstance(open_cgroup("sandpool", "sp-1", tmp_path), CgroupV2)


def test_runtime_path_is_a_child_of_the_sandpool_cgroup(v2: CgroupV2) -> None:
    assert v2.runtime_path == "/sandpool/sp-1/ctr"


# ---- cgroup v2 ------------------------------------------------------------------------------


def test_v2_create_writes_limits_and_enables_controllers(v2: CgroupV2, tmp_path: Path) -> None:
    v2.create(64 << 20, 100)
    cg = tmp_path / "sandpool" / "sp-1"
    assert (cg / "memory.max").read_text() == str(64 << 20)
    assert (cg / "pids.max").read_text() == "100"
    assert (cg / "memory.swap.max").read_text() == "0"
    # for the runtime's ``ctr``; the path above the slot is ``delegation``'s (test_delegation)
    assert set((cg / "cgroup.subtree_control").read_text().split()) >= {"+memory", "+pids"}
    assert v2.dirs() == [cg]


def test_v2_oom_killed_reads_memory_events(v2: CgroupV2, tmp_path: Path) -> None:
    v2.create(1 << 20, 10)
    events = tmp_path / "sandpool" / "sp-1" / "memory.events"
    assert v2.oom_killed() is False  # no file yet
    events.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n")
    assert v2.oom_killed() is False  # "oom" without a kill is not a kill
    events.write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert v2.oom_killed() is True


def test_v2_wait_oom_returns_promptly_once_oom_kill_is_counted(
    v2: CgroupV2, tmp_path: Path
) -> None:
    v2.create(1 << 20, 10)
    events = tmp_path / "sandpool" / "sp-1" / "memory.events"
    events.write_text("oom 0\noom_kill 0\n")
    _later(0.2, lambda: _write_atomically(events, "oom 1\noom_kill 1\n"))
    began = time.monotonic()
    assert v2.wait_oom(30) is True
    assert 0.15 < time.monotonic() - began < 5


def test_v2_wait_oom_times_out_without_an_oom(v2: CgroupV2) -> None:
    v2.create(1 << 20, 10)
    began = time.monotonic()
    assert v2.wait_oom(0.3) is False
    assert 0.25 < time.monotonic() - began < 5


def test_v2_interrupt_ends_a_pending_and_every_later_wait(v2: CgroupV2) -> None:
    v2.create(1 << 20, 10)
    _later(0.2, v2.interrupt)
    began = time.monotonic()
    assert v2.wait_oom(30) is False
    assert time.monotonic() - began < 5
    began = time.monotonic()
    assert v2.wait_oom(30) is False
    assert time.monotonic() - began < 1


def test_v2_peak_memory(v2: CgroupV2, tmp_path: Path) -> None:
    v2.create(1 << 20, 10)
    assert v2.peak_memory() == 0
    (tmp_path / "sandpool" / "sp-1" / "memory.peak").write_text("123456\n")
    assert v2.peak_memory() == 123456


def test_remove_takes_the_runtime_child_then_the_container_dir(
    v2: CgroupV2, tmp_path: Path
) -> None:
    (tmp_path / "sandpool" / "sp-1" / "ctr").mkdir(parents=True)
    v2.remove()
    assert not (tmp_path / "sandpool" / "sp-1").exists()
    assert (tmp_path / "sandpool").is_dir()  # the shared parent stays


def test_remove_after_the_runtime_removed_its_child(v2: CgroupV2, tmp_path: Path) -> None:
    (tmp_path / "sandpool" / "sp-1").mkdir(parents=True)
    v2.remove()
    assert not (tmp_path / "sandpool" / "sp-1").exists()
    v2.remove()  # twice is fine


def test_kill_all_kills_the_processes_listed_in_the_cgroup(v2: CgroupV2, tmp_path: Path) -> None:
    ctr = tmp_path / "sandpool" / "sp-1" / "ctr"
    ctr.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (ctr / "cgroup.procs").write_text(f"{sleeper.pid}\n")
        v2.kill_all()
        assert sleeper.wait(timeout=5) == -9
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- cgroup v1 ------------------------------------------------------------------------------


def test_v1_create_writes_limits_in_each_hierarchy(v1: CgroupV1, tmp_path: Path) -> None:
    v1.create(32 << 20, 64)
    assert (tmp_path / "memory/sandpool/sp-1/memory.limit_in_bytes").read_text() == str(32 << 20)
    assert (tmp_path / "pids/sandpool/sp-1/pids.max").read_text() == "64"
    assert (tmp_path / "memory/sandpool/sp-1/cgroup.event_control").read_text()
    assert sorted(v1.dirs()) == sorted(
        tmp_path / c / "sandpool/sp-1" for c in ("memory", "pids", "cpu")
    )


def test_v1_oom_arrives_on_the_registered_eventfd(v1: CgroupV1, tmp_path: Path) -> None:
    v1.create(32 << 20, 64)
    registration = (tmp_path / "memory/sandpool/sp-1/cgroup.event_control").read_text()
    efd = int(registration.split()[0])
    assert v1.oom_killed() is False
    _later(0.2, lambda: os.eventfd_write(efd, 1))  # what the kernel does on OOM
    began = time.monotonic()
    assert v1.wait_oom(30) is True
    assert time.monotonic() - began < 5
    assert v1.oom_killed() is True  # stays true once seen


def test_v1_interrupt_ends_the_wait(v1: CgroupV1) -> None:
    v1.create(32 << 20, 64)
    _later(0.2, v1.interrupt)
    began = time.monotonic()
    assert v1.wait_oom(30) is False
    assert time.monotonic() - began < 5


def test_v1_remove_takes_every_hierarchy(v1: CgroupV1, tmp_path: Path) -> None:
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller / "sandpool" / "sp-1" / "ctr").mkdir(parents=True)
    v1.remove()
    for controller in ("memory", "pids", "cpu"):
        assert not (tmp_path / controller / "sandpool" / "sp-1").exists()
        assert (tmp_path / controller / "sandpool").is_dir()


def test_v1_peak_memory(v1: CgroupV1, tmp_path: Path) -> None:
    assert v1.peak_memory() == 0
    (tmp_path / "memory/sandpool/sp-1").mkdir(parents=True)
    (tmp_path / "memory/sandpool/sp-1/memory.max_usage_in_bytes").write_text("4096")
    assert v1.peak_memory() == 4096
