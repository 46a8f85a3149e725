"""The sandpool-owned parent cgroup of one container: limits, OOM detection, removal.

The runtime gets ``cgroupsPath = /<parent>/<name>/ctr`` and creates (and removes) ``ctr``
itself; sandpool owns ``/<parent>/<name>``, puts the memory and pids limits there and watches
it, so an OOM is still visible after the runtime has deleted its cgroup. ``<name>`` is the
container id, or a warm slot (``worker.slots``) that a later container of the same process
takes over: ``create`` then re-sets the limits and starts OOM detection afresh. cgroup v1
(per-controller hierarchies) signals OOM through an eventfd registered in
``cgroup.event_control`` (a registration ends when its eventfd is closed); cgroup v2 counts
``oom_kill`` in ``memory.events``, which is readable (and pollable) at any time.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import select
import time
from abc import ABC, abstractmethod
from pathlib import Path

from sandpool.sizes import parse_size
from sandpool.worker.delegation import ensure_delegated

__all__ = [
    "CGROUP_ROOT",
    "ContainerCgroup",
    "child_names",
    "detect_cgroup_version",
    "open_cgroup",
    "parse_size",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = (
    "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "net_cls",
    "net_prio", "perf_event", "hugetlb", "rdma", "misc", "systemd", "unified",
)  # fmt: skip


def detect_cgroup_version(root: Path = CGROUP_ROOT) -> int:
    """2 on a unified hierarchy, 1 on v1 or hybrid hosts."""
    return 2 if (root / "cgroup.controllers").exists() else 1


class ContainerCgroup(ABC):
    """The parent cgroup of one container. Create it, start the container, poll ``oom_killed``
    (or block on ``wait_oom``), then ``remove`` it after the runtime deleted the container."""

    def __init__(self, root: Path, parent: str, name: str) -> None:
        self.root = root
        self.rel = f"{parent}/{name}"
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    @property
    def runtime_path(self) -> str:
        """The ``cgroupsPath`` to give the runtime (a child of this cgroup)."""
        return f"/{self.rel}/ctr"

    def interrupt(self) -> None:
        """Make a pending or later ``wait_oom`` return at once (the container has exited)."""
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)

    def _wait_readable(self, fds: list[int], timeout: float) -> bool:
        """Sleep until one of ``fds`` is readable, an interrupt, or ``timeout``; True if
        interrupted (the wake fd is never consumed, so later waits return at once too)."""
        if self._wake < 0:
            return True
        ready, _, _ = select.select([*fds, self._wake], [], [], max(0.0, timeout))
        return self._wake in ready

    @abstractmethod
    def create(self, memory_bytes: int, pids: int) -> None:
        """Make the cgroup (or take over an idle one) with its limits and arm OOM detection;
        OOM kills and peaks from before this call are not reported."""

    @abstractmethod
    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed anything in this cgroup so far (non-blocking)."""

    @abstractmethod
    def wait_oom(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds (or until ``interrupt``) for an OOM kill."""

    @abstractmethod
    def peak_memory(self) -> int:
        """Highest memory usage seen, in bytes (0 if unknown)."""

    @abstractmethod
    def dirs(self) -> list[Path]:
        """Every directory this cgroup may have on the host (for removal and leak checks)."""

    def task_dirs(self) -> list[Path]:
        """The directories whose ``cgroup.procs`` list every process of the container."""
        return self.dirs()

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup (last resort of clean-up)."""
        for d in self.task_dirs():
            for procs in (d / "ctr" / "cgroup.procs", d / "cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs.read_text().split():
                        os.kill(int(pid), 9)

    def is_clean(self) -> bool:
        """Whether the runtime's ``ctr`` child is gone and no process is left (fit for reuse)."""
        if any((d / "ctr").exists() for d in self.dirs()):
            return False
        for d in self.task_dirs():
            with contextlib.suppress(FileNotFoundError):
                if (d / "cgroup.procs").read_text().strip():
                    return False
        return True

    def remove(self) -> None:
        """Remove the cgroup directories (the runtime's ``ctr`` child first)."""
        self.close()
        for d in self.dirs():
            _rmdir(d / "ctr")
            _rmdir(d)

    def close(self) -> None:
        """Release file descriptors held for OOM detection."""
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1


def _rmdir(path: Path, attempts: int = 50) -> None:
    for _ in range(attempts):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    path.rmdir()


def _make_dir(path: Path) -> bool:
    """mkdir -p; True if the cgroup was there already (a reused slot)."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return True
    return False


_V1_WATERMARKS = ("memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes",
                  "memory.failcnt", "memory.memsw.failcnt")  # fmt: skip


def _set_memory_limit(memory: Path, value: int, reused: bool) -> None:
    """Set the memory (and, with swap accounting, memory+swap) limit. The kernel wants
    memsw >= memory at every step, so a slot whose limit grows sets memsw first."""
    limit, memsw = memory / "memory.limit_in_bytes", memory / "memory.memsw.limit_in_bytes"
    growing = reused and value > int(limit.read_text())
    if growing:
        with contextlib.suppress(OSError):
            memsw.write_text(str(value))
    try:
        limit.write_text(str(value))
    except OSError as exc:
        if not reused or exc.errno != errno.EBUSY:
            raise
        # An earlier container's page cache, still charged to the slot, is above the new
        # limit and the kernel could not reclaim enough: empty the (task-less) slot, retry.
        (memory / "memory.force_empty").write_text("0")
        limit.write_text(str(value))
    if not growing:
        with contextlib.suppress(OSError):  # absent without swap accounting
            memsw.write_text(str(value))


@functools.lru_cache(maxsize=8)
def _v1_hierarchies(root: Path) -> tuple[str, ...]:
    """The v1 controllers mounted under ``root`` (looked up once: they do not change)."""
    return tuple(c for c in V1_CONTROLLERS if (root / c).is_dir())


class CgroupV1(ContainerCgroup):
    """cgroup v1: memory and pids hierarchies; OOM via eventfd on ``memory.oom_control``."""

    def __init__(self, root: Path, parent: str, name: str) -> None:
        super().__init__(root, parent, name)
        self._efd: int | None = None
        self._oom = False

    def dirs(self) -> list[Path]:
        return [self.root / c / self.rel for c in _v1_hierarchies(self.root)]

    def task_dirs(self) -> list[Path]:
        # The runtimes put every process in every hierarchy; these two are the ones sandpool
        # creates, so reading them (not all sixteen) finds every process, in 4 reads not 32.
        return [self.root / "memory" / self.rel, self.root / "pids" / self.rel]

    def create(self, memory_bytes: int, pids: int) -> None:
        memory = self.root / "memory" / self.rel
        pids_dir = self.root / "pids" / self.rel
        reused = _make_dir(memory)
        _set_memory_limit(memory, memory_bytes, reused)
        if reused:
            for name in _V1_WATERMARKS:  # writing 0 restarts a peak or counter
                with contextlib.suppress(OSError):
                    (memory / name).write_text("0")
        _make_dir(pids_dir)
        (pids_dir / "pids.max").write_text(str(pids))
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        ofd = os.open(memory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            (memory / "cgroup.event_control").write_text(f"{self._efd} {ofd}")
        finally:
            os.close(ofd)

    def _drain(self) -> bool:
        if self._efd is None:
            return self._oom
        with contextlib.suppress(BlockingIOError):
            if os.eventfd_read(self._efd) > 0:
                self._oom = True
        return self._oom

    def oom_killed(self) -> bool:
        return self._drain()

    def wait_oom(self, timeout: float) -> bool:
        if self._oom or self._efd is None:
            return self._oom
        self._wait_readable([self._efd], timeout)
        return self._drain()

    def peak_memory(self) -> int:
        path = self.root / "memory" / self.rel / "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        return 0

    def close(self) -> None:
        if self._efd is not None:
            self._drain()
            os.close(self._efd)
            self._efd = None
        super().close()


_delegated: set[Path] = set()


def _delegate_once(root: Path, parent: str) -> None:
    """``ensure_delegated`` on the first container under ``root/parent`` (again if that
    cgroup was removed meanwhile)."""
    key = root / parent
    if key not in _delegated or not key.is_dir():
        ensure_delegated(root, parent)
        _delegated.add(key)


def _enable_for_ctr(cgroup: Path) -> None:
    """Enable what the runtime's ``ctr`` child may use (one by one if not all are there)."""
    control = cgroup / "cgroup.subtree_control"
    try:
        control.write_text("+memory +pids +cpu +cpuset")
    except OSError:
        for controller in ("memory", "pids", "cpu", "cpuset"):
            with contextlib.suppress(OSError):
                control.write_text(f"+{controller}")


class CgroupV2(ContainerCgroup):
    """cgroup v2: ``memory.max``, ``pids.max``; OOM from ``memory.events`` (hierarchical).

    ``oom_kill`` cannot be reset, so a reused slot counts from its value at ``create``; nor can
    ``memory.peak`` on most kernels, so a reused slot's peak may be an earlier container's."""

    def __init__(self, root: Path, parent: str, name: str) -> None:
        super().__init__(root, parent, name)
        self._oom_base = 0

    def dirs(self) -> list[Path]:
        return [self.root / self.rel]

    def create(self, memory_bytes: int, pids: int) -> None:
        _delegate_once(self.root, self.rel.split("/")[0])
        cg = self.root / self.rel
        if _make_dir(cg):
            self._oom_base = self._events().get("oom_kill", 0)
        _enable_for_ctr(cg)
        (cg / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):
            (cg / "memory.swap.max").write_text("0")
        (cg / "pids.max").write_text(str(pids))

    def _events(self) -> dict[str, int]:
        out = {}
        with contextlib.suppress(OSError):
            for line in (self.root / self.rel / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                out[key] = int(value or 0)
        return out

    def oom_killed(self) -> bool:
        return self._events().get("oom_kill", 0) > self._oom_base

    def wait_oom(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.oom_killed():
            left = deadline - time.monotonic()
            if left <= 0 or self._wait_readable([], min(0.05, left)):
                return self.oom_killed()
        return True

    def peak_memory(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int((self.root / self.rel / "memory.peak").read_text())
        return 0


def child_names(parent: str, pattern: re.Pattern[str], root: Path = CGROUP_ROOT) -> set[str]:
    """Names matching ``pattern`` of the cgroups under ``parent``, in any hierarchy (on v1 a
    clean-up cut short may have removed some hierarchies' directories and not others)."""
    tops = [root] if (root / "cgroup.controllers").exists() else [root / c for c in V1_CONTROLLERS]
    names: set[str] = set()
    for top in tops:
        with contextlib.suppress(OSError):
            names.update(n for n in os.listdir(top / parent) if pattern.match(n))
    return names


def open_cgroup(parent: str, name: str, root: Path = CGROUP_ROOT) -> ContainerCgroup:
    """The right implementation for this host's cgroup version."""
    cls = CgroupV2 if detect_cgroup_version(root) == 2 else CgroupV1
    return cls(root, parent, name)


def remove_stray(parent: str, name: str, root: Path = CGROUP_ROOT) -> bool:
    """SIGKILL what is left in ``parent/name`` and remove the cgroup; whether it went."""
    cgroup = open_cgroup(parent, name, root)
    cgroup.kill_all()
    try:
        cgroup.remove()
    except OSError:
        return False
    return True
