"""What a sandbox uses now, read from its cgroup and its disk: cpu seconds, memory now and at
its peak, disk used. Cheap (a few small file reads and one ``statvfs``), so the dashboard,
``GET /v1/sandboxes/{id}`` and ``/metrics`` read it when asked. A figure that cannot be read
(a runtime that keeps no such counter, a sandbox gone meanwhile) is None."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpool.sandbox.launch import disk_path
from sandpool.worker.cgroups import CGROUP_ROOT, detect_cgroup_version
from sandpool.worker.records import ContainerRecord, containers_dir

__all__ = ["SandboxUsage", "read_usage"]


@dataclass(frozen=True)
class SandboxUsage:
    """cpu in seconds; memory now, memory peak and disk used in bytes."""

    cpu_seconds: float | None
    memory_peak: int | None
    disk_used: int | None
    memory_now: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase view (the API's ``usage``)."""
        return {"cpuSeconds": self.cpu_seconds, "memoryBytes": self.memory_now,
                "memoryPeakBytes": self.memory_peak, "diskUsedBytes": self.disk_used}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxUsage:
        """Read ``to_json``'s output back (a worker's answer to its gateway)."""
        return cls(data.get("cpuSeconds"), data.get("memoryPeakBytes"),
                   data.get("diskUsedBytes"), data.get("memoryBytes"))  # fmt: skip


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
        now = _number(root / rel / "memory.current")
    else:
        cpu_ns = _number(root / "cpuacct" / rel / "ctr" / "cpuacct.usage")
        cpu = None if cpu_ns is None else cpu_ns / 1e9
        peak = _number(root / "memory" / rel / "memory.max_usage_in_bytes")
        now = _number(root / "memory" / rel / "memory.usage_in_bytes")
    return SandboxUsage(cpu, peak, _disk_used(disk_path(state_dir, sandbox_id)), now)


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
    with contextlib.suppress(OSError):
        if os.path.ismount(path):
            return shutil.disk_usage(path).used
    return None
