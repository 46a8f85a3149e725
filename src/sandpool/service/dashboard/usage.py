"""What a running sandbox uses now, read from its cgroup and its disk: cpu seconds, memory
peak, disk used. Missing figures (a runtime that keeps no such counter) are None."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sandpool.sandbox.launch import disk_path
from sandpool.worker.cgroups import CGROUP_ROOT, detect_cgroup_version
from sandpool.worker.records import ContainerRecord, containers_dir

__all__ = ["SandboxUsage", "read_usage"]


@dataclass(frozen=True)
class SandboxUsage:
    """cpu in seconds, memory peak and disk used in bytes."""

    cpu_seconds: float | None
    memory_peak: int | None
    disk_used: int | None


def read_usage(state_dir: Path, sandbox_id: str, root: Path = CGROUP_ROOT) -> SandboxUsage:
    """The sandbox's usage so far (all None when it has no container record)."""
    record = ContainerRecord.load(containers_dir(state_dir) / sandbox_id)
    if record is None:
        return SandboxUsage(None, None, None)
    rel = record.cgroup_parent
    if detect_cgroup_version(root) == 2:
        cpu_us = _stat(root / rel / "cpu.stat", "usage_usec")
        cpu = None if cpu_us is None else cpu_us / 1e6
        peak = _number(root / rel / "memory.peak")
    else:
        cpu_ns = _number(root / "cpuacct" / rel / "ctr" / "cpuacct.usage")
        cpu = None if cpu_ns is None else cpu_ns / 1e9
        peak = _number(root / "memory" / rel / "memory.max_usage_in_bytes")
    return SandboxUsage(cpu, peak, _disk_used(disk_path(state_dir, sandbox_id)))


def _number(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _stat(path: Path, key: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return None


def _disk_used(path: Path) -> int | None:
    if not os.path.ismount(path):
        return None
    return shutil.disk_usage(path).used
