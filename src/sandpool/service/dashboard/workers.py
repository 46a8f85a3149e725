"""The workers the dashboard lists. Today a server runs its sandboxes itself: one local
worker. ``workers_of`` is the one place to read a worker registry from once remote workers
exist."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sandpool.sandbox.manager import SandboxManager
from sandpool.service.context import ServiceContext

__all__ = ["WorkerView", "workers_of"]


@dataclass(frozen=True)
class WorkerView:
    """One worker as the workers page shows it."""

    name: str
    address: str
    pools: tuple[str, ...]
    cpus: int
    memory: int  # bytes
    heartbeat_age: float  # seconds since it was last heard from
    sandboxes: int  # live ones (creating, running, paused, terminating)


def workers_of(context: ServiceContext, manager: SandboxManager | None) -> list[WorkerView]:
    """Every worker of this server (today: this process)."""
    live = [] if manager is None else [i for i in manager.list() if i.state != "terminated"]
    return [WorkerView(name=socket.gethostname(), address="local (in the server process)",
                       pools=tuple(sorted(context.config.pools)), cpus=os.cpu_count() or 0,
                       memory=_memory_total(), heartbeat_age=0.0,
                       sandboxes=len(live))]  # fmt: skip


def _memory_total() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
