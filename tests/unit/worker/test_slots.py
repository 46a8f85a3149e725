"""Warm parent cgroups (``worker.slots``) against a fake cgroupfs tree in ``tmp_path``.

As in ``test_cgroups.py``, the kernel's part is played by the test: a plain directory keeps
files the kernel would drop with it, so removals here go through ``rmtree``.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.worker import cgroups, slots
from sandpool.worker.cgroups import CgroupV1, CgroupV2, ContainerCgroup
from sandpool.worker.records import process_start_time
from sandpool.worker.slots import CgroupSlots, remove_dead_slots

OWNER = "0a1b2c3d"  # the state dir's tag (worker.ownership)


def _rmtree_remove(self: ContainerCgroup) -> None:
    self.close()
    for d in self.dirs():
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def v1_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A v1 tree (memory, pids, cpu) whose ``memory.oom_control`` appears on open."""
    for controller in ("memory", "pids", "cpu"):
        (tmp_path / controller).mkdir()
    real_open = os.open

    def open_creating(path: str | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        if str(path).endswith("memory.oom_control"):
            return real_open(path, flags | os.O_CREAT, 0o644)
        return real_open(path, flags, *args, **kw)  # rmtree passes dir_fd

    monkeypatch.setattr(os, "open", open_creating)
    monkeypatch.setattr(cgroups.ContainerCgroup, "remove", _rmtree_remove)
    return tmp_path


@pytest.fixture
def v2_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(cgroups.ContainerCgroup, "remove", _rmtree_remove)
    return tmp_path


@pytest.fixture
def pool_v1(v1_root: Path) -> Iterator[CgroupSlots]:
    pool = CgroupSlots("sandpool", 2, OWNER, v1_root)
    yield pool
    pool.close()


def _slot_dirs(root: Path, controller: str = "memory") -> list[str]:
    parent = root / controller / "sandpool" if controller else root / "sandpool"
    return sorted(p.name for p in parent.glob("slot-*")) if parent.exists() else []


def _run_once(pool: CgroupSlots, memory: int = 32 << 20) -> ContainerCgroup:
    cgroup = pool.take()
    cgroup.create(memory, 16)
    pool.give_back(cgroup)
    return cgroup


def test_a_clean_slot_is_used_again_by_the_next_container(pool_v1: CgroupSlots) -> None:
    first = _run_once(pool_v1)
    second = pool_v1.take()
    assert second.rel == first.rel
    assert second.rel.startswith(f"sandpool/slot-{os.getpid()}-{process_start_time(os.getpid())}-")
    assert second.runtime_path == f"/{first.rel}/ctr"


def test_reuse_sets_this_containers_limits_and_restarts_the_peaks(
    pool_v1: CgroupSlots, v1_root: Path
) -> None:
    first = _run_once(pool_v1, memory=32 << 20)
    memory = v1_root / "memory" / first.rel
    (memory / "memory.max_usage_in_bytes").write_text("999")
    (memory / "memory.failcnt").write_text("7")
    second = pool_v1.take()
    second.create(64 << 20, 8)
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    assert (v1_root / "pids" / first.rel / "pids.max").read_text() == "8"
    assert (memory / "memory.max_usage_in_bytes").read_text() == "0"
    assert (memory / "memory.failcnt").read_text() == "0"
    second.close()


def test_a_growing_limit_sets_memory_plus_swap_first(
    pool_v1: CgroupSlots, v1_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes."""
    first = _run_once(pool_v1, memory=32 << 20)
    memory = v1_root / "memory" / first.rel
    real_write = Path.write_text

    def kernel_write(path: Path, text: str, *args: object, **kwargs: object) -> int:
        memsw = memory / "memory.memsw.limit_in_bytes"
        growing = path.name == "memory.limit_in_bytes" and memsw.exists()
        if growing and int(text) > int(memsw.read_text()):
            raise OSError(22, "Invalid argument")
        return real_write(path, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", kernel_write)
    second = pool_v1.take()
    second.create(128 << 20, 16)
    assert (memory / "memory.limit_in_bytes").read_text() == str(128 << 20)
    second.close()


def test_an_oom_in_a_slot_is_not_reported_for_the_next_container_v1(
    pool_v1: CgroupSlots, v1_root: Path
) -> None:
    first = pool_v1.take()
    first.create(32 << 20, 16)
    registration = (v1_root / "memory" / first.rel / "cgroup.event_control").read_text()
    os.eventfd_write(int(registration.split()[0]), 1)  # what the kernel does on OOM
    assert first.oom_killed() is True
    pool_v1.give_back(first)
    second = pool_v1.take()
    second.create(32 << 20, 16)
    assert second.rel == first.rel
    assert second.oom_killed() is False
    assert second.wait_oom(0.05) is False
    second.close()


def test_an_oom_in_a_slot_is_not_reported_for_the_next_container_v2(v2_root: Path) -> None:
    pool = CgroupSlots("sandpool", 2, OWNER, v2_root)
    first = pool.take()
    first.create(32 << 20, 16)
    events = v2_root / first.rel / "memory.events"
    events.write_text("oom 1\noom_kill 1\n")
    assert first.oom_killed() is True
    pool.give_back(first)
    second = pool.take()
    second.create(32 << 20, 16)
    assert isinstance(second, CgroupV2) and second.rel == first.rel
    assert second.oom_killed() is False
    events.write_text("oom 2\noom_kill 2\n")  # the counter never goes back
    assert second.oom_killed() is True
    pool.give_back(second)
    pool.close()
    assert _slot_dirs(v2_root, "") == []


@pytest.mark.parametrize("dirt", ["ctr", "cgroup.procs"])
def test_a_dirty_slot_is_removed_not_reused(pool_v1: CgroupSlots, v1_root: Path, dirt: str) -> None:
    cgroup = pool_v1.take()
    cgroup.create(32 << 20, 16)
    pids = v1_root / "pids" / cgroup.rel
    if dirt == "ctr":
        (pids / "ctr").mkdir()  # the runtime did not remove its cgroup
    else:
        (pids / "cgroup.procs").write_text("4242\n")  # a process escaped into the parent
    pool_v1.give_back(cgroup)
    assert _slot_dirs(v1_root) == [] and _slot_dirs(v1_root, "pids") == []
    assert pool_v1.take().rel != cgroup.rel


def test_no_more_idle_slots_are_kept_than_the_capacity(pool_v1: CgroupSlots, v1_root: Path) -> None:
    taken = [pool_v1.take() for _ in range(3)]
    for cgroup in taken:
        cgroup.create(32 << 20, 16)
    for cgroup in taken:
        pool_v1.give_back(cgroup)
    assert len(_slot_dirs(v1_root)) == 2


def test_close_removes_idle_slots_and_later_ones(pool_v1: CgroupSlots, v1_root: Path) -> None:
    running = pool_v1.take()
    running.create(32 << 20, 16)
    _run_once(pool_v1)
    assert len(_slot_dirs(v1_root)) == 2
    pool_v1.close()
    assert _slot_dirs(v1_root) == [running.rel.rpartition("/")[2]]
    pool_v1.give_back(running)  # a run still in flight at close
    assert _slot_dirs(v1_root) == [] and _slot_dirs(v1_root, "cpu") == []


def test_a_forgotten_pool_removes_its_idle_slots(v1_root: Path) -> None:
    pool = CgroupSlots("sandpool", 2, OWNER, v1_root)
    _run_once(pool)
    assert _slot_dirs(v1_root)
    del pool  # garbage-collected (or the interpreter exits) without close()
    assert _slot_dirs(v1_root) == []


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_gc_removes_the_slots_of_dead_owners_only(pool_v1: CgroupSlots, v1_root: Path) -> None:
    mine = _run_once(pool_v1).rel.rpartition("/")[2]
    me = os.getpid()
    dead = [f"slot-{_dead_pid()}-1-{OWNER}-1", f"slot-{me}-1-{OWNER}-2"]  # gone; pid reused
    for name in dead:
        for controller in ("memory", "pids"):
            (v1_root / controller / "sandpool" / name).mkdir(parents=True)
    (v1_root / "cpu" / "sandpool" / "sp-0123456789abcdef").mkdir(parents=True)  # not a slot
    assert sorted(remove_dead_slots("sandpool", OWNER, v1_root)) == sorted(dead)
    assert _slot_dirs(v1_root) == [mine] and _slot_dirs(v1_root, "pids") == [mine]
    assert (v1_root / "cpu" / "sandpool" / "sp-0123456789abcdef").is_dir()


def test_gc_leaves_the_slots_of_another_state_dir(v1_root: Path) -> None:
    """Under a shared cgroupParent, a dead owner's slot of another state dir may still hold
    that state dir's container: only its own gc may kill it."""
    others = [f"slot-{_dead_pid()}-1-ffffffff-1", f"slot-{_dead_pid()}-1-1"]  # other; old name
    for name in others:
        (v1_root / "memory" / "sandpool" / name).mkdir(parents=True)
    assert remove_dead_slots("sandpool", OWNER, v1_root) == []
    assert _slot_dirs(v1_root) == sorted(others)


def test_a_forked_child_does_not_take_its_parents_idle_slots(
    pool_v1: CgroupSlots, monkeypatch: pytest.MonkeyPatch
) -> None:
    parents = _run_once(pool_v1).rel
    monkeypatch.setattr(slots.os, "getpid", lambda: 1)  # as seen in a forked child
    child = pool_v1.take()
    assert child.rel != parents and child.rel.startswith("sandpool/slot-1-")


def test_slots_use_the_hosts_cgroup_version(v1_root: Path) -> None:
    assert isinstance(CgroupSlots("sandpool", 1, OWNER, v1_root).take(), CgroupV1)


def test_a_reused_slot_over_its_new_limit_is_emptied_first(
    v1_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refuses (EBUSY) a limit below what it cannot reclaim: force_empty, retry."""
    first = CgroupV1(v1_root, "sandpool", "slot-1-1-1")
    first.create(1 << 30, 64)
    first.close()
    memory = v1_root / "memory" / "sandpool" / "slot-1-1-1"
    refusals = [OSError(errno.EBUSY, "Device or resource busy")]
    real_write = Path.write_text

    def busy_once(self: Path, data: str, *args: object, **kw: object) -> int:
        if self.name == "memory.limit_in_bytes" and refusals:
            raise refusals.pop()
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_text", busy_once)
    CgroupV1(v1_root, "sandpool", "slot-1-1-1").create(1 << 20, 64)
    assert (memory / "memory.force_empty").read_text() == "0"
    assert (memory / "memory.limit_in_bytes").read_text() == str(1 << 20)
