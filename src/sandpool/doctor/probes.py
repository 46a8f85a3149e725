"""Where the doctor looks on this host; tests pass stand-ins for what a machine lacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sandpool.runtime.probe import KVM_DEVICE
from sandpool.worker.cgroups import CGROUP_ROOT

if TYPE_CHECKING:
    from sandpool.config.resolved import ResolvedConfig, ResolvedPool
    from sandpool.doctor.report import Check

__all__ = ["SMOKE_TIMEOUT", "HostProbes", "SmokeTest"]

SMOKE_TIMEOUT = 15.0

# (pool, config, start timeout in seconds) -> the smoke test's finding
SmokeTest = Callable[["ResolvedPool", "ResolvedConfig", float], "Check"]


def _real_smoke_test(pool: ResolvedPool, config: ResolvedConfig, timeout: float) -> Check:
    from sandpool.doctor.smoke import smoke_test

    return smoke_test(pool, config, timeout)


def _real_userns_off_reason(config: ResolvedConfig) -> str | None:
    from sandpool.doctor.userns import userns_off_reason

    return userns_off_reason(config)


def _default_serve_socket() -> str | None:
    import os

    from sandpool.warm.protocol import socket_path

    return socket_path(os.environ)


@dataclass(frozen=True)
class HostProbes:
    """The host paths and programs the checks read; the defaults are the real ones."""

    dev_dir: Path = Path("/dev")
    kvm_device: str = KVM_DEVICE
    cgroup_root: Path = CGROUP_ROOT
    nvidia_smi: str = "nvidia-smi"
    mkfs_ext4: str = "mkfs.ext4"
    proc_filesystems: Path = Path("/proc/filesystems")
    smoke_timeout: float = SMOKE_TIMEOUT
    smoke_test: SmokeTest = field(default=_real_smoke_test)
    serve_socket: str | None = field(default_factory=_default_serve_socket)
    # why runc containers would run without a user namespace here; None: they get one
    userns_off_reason: Callable[[ResolvedConfig], str | None] = field(
        default=_real_userns_off_reason
    )
