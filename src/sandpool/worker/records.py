"""Container records: one JSON file per live container under ``<stateDir>/containers/<id>/``.

A record names everything needed to find and remove the container later (runtime, its root
and platform, cgroup, overlay, the owning process), so ``ps``, ``kill`` and ``gc`` work from
another process, including after the owner crashed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["KILLED_FILE", "ContainerRecord", "containers_dir", "load_records", "process_start_time"]

RECORD_FILE = "record.json"
# Written into a container's directory by `sandpool kill`: its owner stops it (even one still
# starting, which the runtime cannot kill yet) and reports 137.
KILLED_FILE = "killed"


def containers_dir(state_dir: Path) -> Path:
    """Where the per-container directories live."""
    return state_dir / "containers"


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone. A zombie
    is gone: it has exited, and where nobody reaps it (a container's PID 1 that does not) it
    would otherwise count as a live owner for ever."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass(frozen=True)
class ContainerRecord:
    """What sandpool knows about a container it started."""

    id: str
    pool: str
    runtime: str
    runtime_binary: str
    runtime_root: str
    runtime_args: tuple[str, ...]
    cgroup_parent: str
    owner_pid: int
    owner_start: int
    created: float
    command: tuple[str, ...]
    image: str

    def owner_alive(self) -> bool:
        """Whether the sandpool process that started this container still runs."""
        return process_start_time(self.owner_pid) == self.owner_start

    def save(self, directory: Path) -> None:
        """Write the record atomically into ``directory``."""
        tmp = directory / (RECORD_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, directory / RECORD_FILE)

    @classmethod
    def load(cls, directory: Path) -> ContainerRecord | None:
        """Read the record in ``directory``; None if absent or unreadable."""
        try:
            data = json.loads((directory / RECORD_FILE).read_text())
            data["runtime_args"] = tuple(data["runtime_args"])
            data["command"] = tuple(data["command"])
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def load_records(state_dir: Path) -> list[tuple[Path, ContainerRecord | None]]:
    """Every container directory with its record (None for a directory without one)."""
    root = containers_dir(state_dir)
    if not root.is_dir():
        return []
    return [(d, ContainerRecord.load(d)) for d in sorted(root.iterdir()) if d.is_dir()]
