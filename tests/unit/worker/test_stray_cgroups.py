"""The sweep of cgroups named after a container whose directory is gone
(``worker.stray_cgroups``), against a fake v1 cgroupfs tree in ``tmp_path``; and the
temporary files named after their writer (``worker.owned_files``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandpool.worker import cgroups
from sandpool.worker.cgroups import ContainerCgroup
from sandpool.worker.owned_files import remove_dead_temp_files, temp_name
from sandpool.worker.ownership import new_container_id, owner_tag
from sandpool.worker.records import containers_dir, process_start_time
from sandpool.worker.stray_cgroups import remove_stray_cgroups

PARENT = "sandpool"


def _rmtree_remove(self: ContainerCgroup) -> None:
    for d in self.dirs():
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A v1 tree (memory, pids) where a removal is an ``rmtree`` (the kernel's part)."""
    for controller in ("memory", "pids"):
        (tmp_path / "cgroup" / controller).mkdir(parents=True)
    monkeypatch.setattr(cgroups.ContainerCgroup, "remove", _rmtree_remove)
    return tmp_path / "cgroup"


def _cgroup(root: Path, name: str, controllers: tuple[str, ...] = ("memory", "pids")) -> None:
    for controller in controllers:
        (root / controller / PARENT / name).mkdir(parents=True)


def _names(root: Path) -> list[str]:
    return sorted({p.name for c in ("memory", "pids") for p in (root / c / PARENT).glob("*")})


def test_only_this_state_dirs_cgroups_without_a_directory_are_removed(
    root: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    gone, running = new_container_id(state), new_container_id(state)
    (containers_dir(state) / running).mkdir(parents=True)  # a container starting or running
    other = new_container_id(tmp_path / "another-state")  # another state dir's, no directory
    old = "sp-0123456789abcdef"  # before ids carried a tag: not provably ours
    slot = f"slot-1-1-{owner_tag(state)}-1"  # a warm slot: the slot sweep's business
    for name in (gone, running, other, old, slot):
        _cgroup(root, name)
    _cgroup(root, half := new_container_id(state), ("pids",))  # a v1 removal cut short
    assert remove_stray_cgroups(state, PARENT, root) == sorted([gone, half])
    assert _names(root) == sorted([running, other, old, slot])


def test_on_cgroup_v2_the_one_hierarchy_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, state = tmp_path / "cgroup", tmp_path / "state"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(cgroups.ContainerCgroup, "remove", _rmtree_remove)
    gone = new_container_id(state)
    (root / PARENT / gone / "ctr").mkdir(parents=True)  # the runtime's own child too
    assert remove_stray_cgroups(state, PARENT, root) == [gone]
    assert list((root / PARENT).iterdir()) == []


def test_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    mine = temp_name(tmp_path / "sandpool-init-abc")
    me = os.getpid()
    assert mine.name == f"sandpool-init-abc.{me}-{process_start_time(me)}.tmp"
    child = subprocess.Popen(["true"])
    child.wait()
    dead = [f"sandpool-init-abc.{child.pid}-1.tmp", f"x.{me}-1.tmp"]  # gone; pid reused
    kept = [mine.name, "sandpool-init-abc", "sandpool-init-abc.123.tmp"]  # live; not temporary
    for name in (*dead, *kept):
        (tmp_path / name).write_text("")
    assert remove_dead_temp_files(tmp_path) == sorted(dead)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert remove_dead_temp_files(tmp_path / "absent") == []
