"""The workers the dashboard lists: the server's own (it runs sandboxes itself) and, on a
gateway (``sandpool server --redis``), every worker registered in the dispatch's registry
with its pool, capacity, heartbeat age and sandboxes held. On a gateway a pool's health is
its workers' (``pool_workers_diagnosis``): their runtime checks ran where the sandboxes run,
not on the gateway."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Protocol

from sandpool.dispatch.models import WorkerState
from sandpool.doctor.report import Check, fail, ok, warn
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.warm import WarmStats
from sandpool.service.context import ServiceContext
from sandpool.service.dashboard.doctor_cache import PoolDiagnosis

__all__ = ["WorkerView", "pool_workers_diagnosis", "warm_of_workers", "workers_of"]


@dataclass(frozen=True)
class WorkerView:
    """One worker as the workers page shows it."""

    name: str
    address: str
    pools: tuple[str, ...]
    cpus: int
    memory: int  # bytes
    heartbeat_age: float | None  # seconds since it was last heard from (None: lease ran out)
    sandboxes: int  # live ones (creating, running, paused, terminating)
    state: str = "up"  # up, lost (its lease ran out), runtime check failed


class Registry(Protocol):
    """The part of the dispatch's broker the page reads."""

    def workers(self) -> list[WorkerState]: ...

    def heartbeat_ages(self, worker_ids: list[str]) -> dict[str, float | None]: ...


def workers_of(context: ServiceContext, manager: SandboxManager | None,
               registry: Registry | None = None) -> list[WorkerView]:  # fmt: skip
    """This server's own worker, then every registered remote worker (on a gateway). A
    gateway runs no sandboxes itself (no manager): only its registered workers."""
    if registry is not None and manager is None:
        return remote_workers(registry)
    live = [] if manager is None else [i for i in manager.list() if i.state != "terminated"]
    local = WorkerView(name=socket.gethostname(), address="local (in the server process)",
                       pools=tuple(sorted(context.config.pools)), cpus=os.cpu_count() or 0,
                       memory=_memory_total(), heartbeat_age=0.0,
                       sandboxes=len(live))  # fmt: skip
    return [local, *([] if registry is None else remote_workers(registry))]


def remote_workers(registry: Registry) -> list[WorkerView]:
    """The registered workers as the page shows them (capacity cpu in whole cores)."""
    found = registry.workers()
    ages = registry.heartbeat_ages([w.id for w in found])
    views = []
    for worker in found:
        spec, age = worker.spec, ages.get(worker.id)
        state = "runtime check failed" if not spec.runtime_ok else "up" if worker.alive else "lost"
        views.append(WorkerView(
            name=worker.id, address=spec.address, pools=(spec.pool,),
            cpus=spec.capacity.cpu // 1000, memory=spec.capacity.memory,
            heartbeat_age=age,
            sandboxes=spec.capacity.sandboxes - worker.free.sandboxes, state=state,
        ))  # fmt: skip
    return views


def pool_workers_diagnosis(registry: Registry, pool: str) -> PoolDiagnosis:
    """One check per registered worker of ``pool`` (its runtime check, its lease), or one
    failed check when the pool has none."""
    views = [v for v in remote_workers(registry) if pool in v.pools]
    checks = [_worker_check(pool, v) for v in views] or [
        fail(pool, "workers", f"no worker of pool '{pool}' is registered",
             f"start one: `sandpool worker --pool {pool} --gateway URL`")]  # fmt: skip
    return PoolDiagnosis(tuple(checks), time.time())


def _worker_check(pool: str, view: WorkerView) -> Check:
    name = f"worker {view.name}"
    if view.state == "runtime check failed":
        return fail(pool, name, f"at {view.address}: its runtime check failed",
                    f"run `sandpool doctor --pool {pool}` on that worker's machine")  # fmt: skip
    if view.state == "lost":
        return warn(pool, name, f"at {view.address}: its lease ran out (lost)",
                    "restart it, or remove it if it is gone for good")  # fmt: skip
    return ok(pool, name, f"at {view.address}: runtime check passed, up")


def warm_of_workers(registry: Registry, sizes: dict[str, int]) -> dict[str, WarmStats]:
    """Pool -> its warm pool as the live registered workers last reported it (ready ones)."""
    ready = dict.fromkeys(sizes, 0)
    for worker in registry.workers():
        if worker.alive and worker.spec.pool in ready:
            ready[worker.spec.pool] += worker.warm
    return {pool: WarmStats(pool, sizes[pool], ready=n) for pool, n in ready.items()}


def _memory_total() -> int:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
