"""Per-container disk limit: the writable layer lives on a small ext4 filesystem of its own.

Each container's overlay ``upper/`` and ``work/`` are directories on a loop-mounted ext4 of the
requested size (``containerDefaults.disk``, ``--disk``), so a container that fills it gets
ENOSPC from the kernel and the host's disk holds at most that much for it. The backing file is
sparse and unlinked as soon as it is mounted (the loop device keeps it open; it disappears with
the mount), mounted ``discard`` (freed blocks are punched out of the sparse file) and
``nosuid,nodev`` (nothing written by a container gives privilege through the host path).

Making one costs ~20-30 ms (``mkfs.ext4`` + ``mount -o loop``), so a process keeps the disks of
its finished containers ("disk slots", like ``worker.slots`` for cgroups): the layer is wiped
and the disk handed to its next container of the same size. A slot is mounted at
``<stateDir>/disks/disk-<pid>-<start>-<n>``, named after the owning process, so ``gc`` tells a
dead owner's disks (``remove_dead_disks``) from a live one's. Nothing else keeps a loop device:
unmounting frees it (``mount -o loop`` sets autoclear).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import ContainerStartFailed
from sandpool.sizes import MIN_DISK, parse_size
from sandpool.worker.overlay import unmount
from sandpool.worker.records import process_start_time

__all__ = ["DiskSlots", "WritableDisk", "disks_dir", "remove_dead_disks", "request_size"]

log = logging.getLogger(__name__)
DISK_NAME = re.compile(r"^disk-(\d+)-(\d+)-\d+$")
# A sandbox's own disk (``sandbox.launch``): named after the sandbox, whatever process owns it.
BOX_DISK_NAME = re.compile(r"^box-(sp-[0-9a-f-]+)$")
_MKFS = ("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
         "-E", "lazy_itable_init=1,nodiscard,root_owner=0:0")  # fmt: skip
_MOUNT_OPTIONS = "loop,discard,nosuid,nodev,noatime"
_LAYER_DIRS = ("upper", "work")
_serial = itertools.count(1)


def disks_dir(state_dir: Path) -> Path:
    """Where the disks of every container of ``state_dir`` are mounted."""
    return state_dir / "disks"


@dataclass(frozen=True)
class WritableDisk:
    """One mounted, size-limited filesystem for one container's writable layer at a time."""

    path: Path
    size: int

    def attach(self, container_dir: Path) -> None:
        """Give ``container_dir`` its ``upper`` and ``work`` on this disk (as symlinks that
        ``mount_overlay`` follows), fresh and empty."""
        for name in _LAYER_DIRS:
            target = self.path / name
            target.mkdir(mode=0o700)
            os.symlink(target, container_dir / name)

    def wipe(self) -> bool:
        """Remove the last container's layer; whether the disk is empty again."""
        for name in _LAYER_DIRS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        return not any((self.path / n).exists() for n in _LAYER_DIRS)


def request_size(what: str, text: str) -> int:
    """A run's ``disk`` size in bytes, or ContainerStartFailed naming it (at least 1Mi)."""
    try:
        return parse_size(text, MIN_DISK)
    except ValueError as exc:
        raise ContainerStartFailed(f"{what}: {exc}") from None


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerStartFailed(f"cannot {what}: {exc}",
                                   hint="install e2fsprogs and util-linux") from exc  # fmt: skip
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise ContainerStartFailed(f"cannot {what}: {detail[0]}")


def make_disk(path: Path, size: int) -> WritableDisk:
    """A new ext4 of ``size`` bytes mounted at ``path`` (which must not exist)."""
    image = path.with_name(path.name + ".img")
    path.mkdir(mode=0o700)
    try:
        with open(image, "xb") as backing:
            backing.truncate(size)
        _run([*_MKFS, str(image)], f"make the {size}-byte disk of {path}")
        _run(["mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(path)],
             f"mount the disk {path}")  # fmt: skip
        os.chmod(path, 0o700)
    except BaseException:
        remove_disk(path)
        raise
    finally:
        image.unlink(missing_ok=True)  # the loop device holds it while mounted
    return WritableDisk(path, size)


def remove_disk(path: Path) -> None:
    """Unmount ``path`` (which frees its loop device and backing file) and remove it."""
    unmount(path)
    with contextlib.suppress(OSError):
        path.rmdir()
    path.with_name(path.name + ".img").unlink(missing_ok=True)


class DiskSlots:
    """Up to ``capacity`` idle disks of this process under ``<state_dir>/disks``.

    Thread safe. ``take(size)`` gives an idle disk of that size or makes one; ``give_back``
    wipes it and keeps it for the next container, or removes it when it is not clean, the
    list is full or the slots are closed. ``close`` (and the object's garbage collection, and
    the interpreter's exit) removes the idle disks; a crashed owner's are left to ``gc``.
    """

    def __init__(self, state_dir: Path, capacity: int) -> None:
        self.dir, self.capacity = disks_dir(state_dir), capacity
        self._lock = threading.Lock()
        self._idle: list[WritableDisk] = []  # mutated in place: the finalizer holds it too
        self._closed = False
        self._pid, self._prefix = 0, ""
        self._forked()
        weakref.finalize(self, _remove_idle, self._idle, self._pid)

    def _forked(self) -> None:
        """In a new process: the idle disks are the parent's; forget them, and name new ones
        after this process."""
        pid = os.getpid()
        if self._pid != pid:
            self._pid, self._prefix = pid, f"disk-{pid}-{process_start_time(pid) or 0}"
            self._idle.clear()

    def take(self, size: int) -> WritableDisk:
        """A mounted, empty disk of ``size`` bytes."""
        with self._lock:
            self._forked()
            for disk in self._idle:
                if disk.size == size:
                    self._idle.remove(disk)
                    return disk
            name = f"{self._prefix}-{next(_serial)}"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        return make_disk(self.dir / name, size)

    def give_back(self, disk: WritableDisk) -> None:
        """Keep ``disk`` for a later container if it wipes clean and there is room."""
        if disk.wipe():
            with self._lock:
                if not self._closed and len(self._idle) < self.capacity:
                    self._idle.append(disk)
                    return
        remove_disk(disk.path)

    def close(self) -> None:
        """Remove every idle disk; disks given back later are removed, not kept."""
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
            self._closed = True
        _remove_idle(idle, self._pid)


def _remove_idle(idle: list[WritableDisk], owner: int) -> None:
    if os.getpid() != owner:
        return
    for disk in list(idle):
        remove_disk(disk.path)
    idle.clear()


def _disk_is_dead(state_dir: Path, name: str) -> bool:
    """A warm disk whose owning process is gone, or a sandbox's whose directory is gone."""
    box = BOX_DISK_NAME.match(name)
    if box is not None:
        return not (state_dir / "containers" / box[1]).exists()
    match = DISK_NAME.match(name)
    return match is not None and process_start_time(int(match[1])) != int(match[2])


def remove_dead_disks(state_dir: Path) -> list[str]:
    """Unmount and remove the disks whose owning process is gone; their names."""
    removed = []
    with contextlib.suppress(OSError):
        for name in sorted({n.removesuffix(".img") for n in os.listdir(disks_dir(state_dir))}):
            if not _disk_is_dead(state_dir, name):
                continue
            remove_disk(disks_dir(state_dir) / name)
            log.info("gc: removed disk %s (owner gone)", name)
            removed.append(name)
    return removed
