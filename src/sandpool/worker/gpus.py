"""Which GPUs a container gets: exactly the number it asked for, never one in use elsewhere.

The host's GPUs are its ``/dev/nvidia<N>`` device nodes (the directory is a parameter, so tests
use a stand-in). A container that asks for N gets N device indices (``NVIDIA_VISIBLE_DEVICES``
names them, for the NVIDIA hook and nvproxy) under a lease: one ``flock`` per device on
``<stateDir>/gpus/<index>.lock``, exclusive unless the pool allows sharing
(``containerDefaults.gpuSharing``: shared locks, which exclusive ones still exclude). Locks
are held by open file descriptions of the sandpool process that runs the container, so they
count across processes and vanish with a process that dies (nothing for ``gc`` to release).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sandpool.errors import ContainerStartFailed

__all__ = ["DEV_DIR", "GpuLease", "acquire_gpus", "host_gpus"]

DEV_DIR = Path("/dev")
_DEVICE = re.compile(r"^nvidia(\d+)$")


def host_gpus(dev_dir: Path = DEV_DIR) -> list[int]:
    """The indices of the GPU device nodes under ``dev_dir``, sorted."""
    try:
        names = os.listdir(dev_dir)
    except OSError:
        return []
    return sorted(int(m[1]) for m in map(_DEVICE.match, names) if m)


@dataclass
class GpuLease:
    """GPUs held for one container until ``release``."""

    indices: tuple[int, ...] = ()
    _fds: list[int] = field(default_factory=list, repr=False)

    @property
    def visible_devices(self) -> str:
        """The value of ``NVIDIA_VISIBLE_DEVICES`` for these GPUs."""
        return ",".join(str(i) for i in self.indices)

    def release(self) -> None:
        """Give the GPUs back (closing the lock files drops the locks)."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self.indices = ()


def _try_lock(directory: Path, index: int, shared: bool) -> int | None:
    fd = os.open(directory / f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire_gpus(count: int, state_dir: Path, *, sharing: bool = False,
                 dev_dir: Path = DEV_DIR) -> GpuLease:  # fmt: skip
    """A lease on ``count`` GPUs of this host; ContainerStartFailed (exit 125) when the host
    has fewer, or when not enough of them are free."""
    lease = GpuLease()
    if count <= 0:
        return lease
    devices = host_gpus(dev_dir)
    if count > len(devices):
        raise ContainerStartFailed(
            f"--gpu {count}: this host has {len(devices)} GPU(s)",
            hint=f"ask for at most {len(devices)} (the {dev_dir}/nvidia<N> devices)",
        )
    directory = state_dir / "gpus"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    taken: list[int] = []
    for index in devices:
        if len(taken) == count:
            break
        fd = _try_lock(directory, index, sharing)
        if fd is not None:
            lease._fds.append(fd)
            taken.append(index)
    if len(taken) < count:
        lease.release()
        raise ContainerStartFailed(
            f"--gpu {count}: only {len(taken)} of this host's {len(devices)} GPU(s) are free",
            hint="the others are leased to running containers (gpuSharing: true shares them)",
        )
    lease.indices = tuple(taken)
    return lease
