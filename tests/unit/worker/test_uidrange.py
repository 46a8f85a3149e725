"""uid range allocation: distinct across processes, released by owner, gc and staleness."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from sandpool.errors import ContainerStartFailed
from sandpool.worker import uidrange
from sandpool.worker.uidrange import RANGE_FILE, RANGE_SIZE, allocate, release, release_stale


def _container(state: Path, name: str) -> Path:
    directory = state / "containers" / name
    directory.mkdir(parents=True)
    return directory


def _allocate_in_child(args: tuple[str, str]) -> int:
    state, name = args
    return allocate(Path(state), name, 100000).index


def test_concurrent_processes_never_share_a_range(tmp_path: Path) -> None:
    names = [f"sp-{i}" for i in range(12)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        indexes = pool.map(_allocate_in_child, [(str(tmp_path), n) for n in names])
    assert sorted(indexes) == list(range(12))
    held = {(tmp_path / "userns" / str(i)).read_text() for i in indexes}
    assert held == set(names)


def test_a_released_range_is_reused_and_host_ids_follow_the_base(tmp_path: Path) -> None:
    first = allocate(tmp_path, "sp-a", 200000)
    second = allocate(tmp_path, "sp-b", 200000)
    assert (first.host_id, second.host_id) == (200000, 200000 + RANGE_SIZE)
    release(tmp_path, first.index, "sp-other")  # not its holder: nothing happens
    assert allocate(tmp_path, "sp-c", 200000).index == 2
    release(tmp_path, first.index, "sp-a")
    assert allocate(tmp_path, "sp-d", 200000).index == first.index


def test_gc_releases_by_the_containers_directory_and_stale_holders(tmp_path: Path) -> None:
    kept, gone, noted = (_container(tmp_path, n) for n in ("sp-kept", "sp-gone", "sp-noted"))
    ranges = {d.name: allocate(tmp_path, d.name, 100000) for d in (kept, gone, noted)}
    (noted / RANGE_FILE).write_text(str(ranges["sp-noted"].index))
    uidrange.release_for(noted)
    gone.rmdir()
    assert release_stale(tmp_path) == [ranges["sp-gone"].index]
    holders = sorted(p.read_text() for p in (tmp_path / "userns").iterdir())
    assert holders == ["", "", "sp-kept"]


def test_exhausted_ranges_are_a_clear_start_failure(tmp_path: Path) -> None:
    base = 2**32 - 1 - 2 * RANGE_SIZE  # room for two ranges
    allocate(tmp_path, "sp-a", base)
    allocate(tmp_path, "sp-b", base)
    with pytest.raises(ContainerStartFailed, match="no free user-namespace uid range"):
        allocate(tmp_path, "sp-c", base)
