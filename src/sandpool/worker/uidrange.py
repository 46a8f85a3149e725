"""Host uid/gid ranges for runc containers' user namespaces, allocated so that no two live
containers of one state dir ever share one, across processes.

Range ``k`` is the host ids ``base + k * RANGE_SIZE`` up to the next range. Its allocation is
the file ``<stateDir>/userns/<k>``: empty when free, else the id of the container holding it.
Every read-modify-write of a file happens under ``flock`` on it, so allocating, releasing and
``gc`` never see half of a change. A range stays allocated after its owner process dies (its
container may still run): the owner's clean-up or ``gc`` (``release_for``) frees it, and
``release_stale`` frees ranges whose container directory is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import ContainerStartFailed

__all__ = [
    "DEFAULT_BASE",
    "RANGE_FILE",
    "RANGE_SIZE",
    "UidRange",
    "allocate",
    "release",
    "release_for",
    "release_stale",
]

RANGE_SIZE = 65536
DEFAULT_BASE = 100000
MAX_RANGES = 4096  # 268M host ids above the base: far more than one host runs at once
RANGE_FILE = "userns-range"  # in the container's directory: which range it holds


@dataclass(frozen=True)
class UidRange:
    """Host ids ``host_id .. host_id + size - 1`` seen as ``0 .. size - 1`` in a container."""

    index: int
    host_id: int
    size: int = RANGE_SIZE


def ranges_dir(state_dir: Path) -> Path:
    """Where the allocation files live."""
    return state_dir / "userns"


def range_count(base: int) -> int:
    """How many ranges fit above ``base`` (host ids stay below 2^32 - 1, which means 'none')."""
    return max(0, min(MAX_RANGES, (2**32 - 1 - base) // RANGE_SIZE))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    return os.pread(fd, 256, 0).decode(errors="replace").strip()


def _set_holder(fd: int, holder: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)


def allocate(state_dir: Path, container_id: str, base: int,
             preferred: Iterable[int] = ()) -> UidRange:  # fmt: skip
    """Claim a free range for ``container_id`` (``preferred`` ones first: their user
    namespaces are cached) and note it in the container's directory for ``gc``."""
    directory = ranges_dir(state_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    count = range_count(base)
    for index in (*[i for i in preferred if i < count], *range(count)):
        with _locked(directory / str(index)) as fd:
            if not _holder(fd):
                _set_holder(fd, container_id)
                return UidRange(index, base + index * RANGE_SIZE)
    raise ContainerStartFailed(
        f"no free user-namespace uid range above {base} ({count} ranges of {RANGE_SIZE}, all "
        f"held; see {directory})",
        hint="wait for running containers to end, run `sandpool gc`, or lower "
        "worker.userNamespaceBase",
    )


def release(state_dir: Path, index: int, container_id: str) -> None:
    """Free range ``index`` if ``container_id`` still holds it."""
    path = ranges_dir(state_dir) / str(index)
    if not path.exists():
        return
    with _locked(path) as fd:
        if _holder(fd) == container_id:
            _set_holder(fd, "")


def release_for(container_dir: Path) -> None:
    """Free the range the container of ``container_dir`` holds (its clean-up, or ``gc``)."""
    try:
        index = int((container_dir / RANGE_FILE).read_text())
    except (OSError, ValueError):
        return
    release(container_dir.parent.parent, index, container_dir.name)


def release_stale(state_dir: Path) -> list[int]:
    """Free ranges whose container has no directory any more; the indexes freed. Safe against
    a concurrent allocation: a container's directory exists before it takes a range and is
    removed only after it gave it back."""
    directory = ranges_dir(state_dir)
    freed = []
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            if not path.name.isdigit():
                continue
            with _locked(path) as fd:
                holder = _holder(fd)
                if holder and not (state_dir / "containers" / holder).is_dir():
                    _set_holder(fd, "")
                    freed.append(int(path.name))
    return sorted(freed)
