"""Which worker takes a request, as Beta9's scheduler chooses (``pkg/scheduler``).

Filters, in order: the worker is alive and its runtime check passed; the pool selector (a
request that names a pool goes only to that pool's workers; one that names none goes to any
pool that does not set ``requiresPoolSelector``); the GPU type; the resources it still has
free. Among those left: for a request a warm sandbox would match (``Demand.warm``), a worker
that reported one ready first (issue 18: its create is a claim, not a cold start); then the
highest pool ``priority``, then the best fit (the worker left with the least free, as a
fraction of its capacity), then the worker id (stable).

Pure functions over ``WorkerState``s: the broker reads the registry, calls ``choose`` and
then reserves the chosen worker's resources atomically in Redis (another gateway may have
taken them meanwhile; the request then waits for the next pass).
"""

from __future__ import annotations

from collections.abc import Iterable

from sandpool.dispatch.models import Demand, Resources, WorkerState

__all__ = ["choose", "eligible", "leftover", "rank"]

ANY_GPU = ("", "any")


def eligible(worker: WorkerState, demand: Demand) -> bool:
    """Whether ``worker`` may take ``demand`` now."""
    spec = worker.spec
    if not worker.alive or not spec.runtime_ok:
        return False
    if demand.pool is None:
        if spec.requires_pool_selector:
            return False
    elif spec.pool != demand.pool:
        return False
    if demand.resources.gpus > 0 and not spec.gpu_type:
        return False
    if demand.gpu_type not in ANY_GPU and demand.gpu_type != spec.gpu_type:
        return False
    return demand.resources.fits_in(worker.free)


def leftover(worker: WorkerState, need: Resources) -> float:
    """How much of the worker stays free once ``need`` is placed, summed as fractions of its
    capacity (lower: a tighter fit)."""
    cap, rest = worker.spec.capacity, worker.free.minus(need)
    pairs = ((rest.cpu, cap.cpu), (rest.memory, cap.memory), (rest.gpus, cap.gpus),
             (rest.sandboxes, cap.sandboxes))  # fmt: skip
    return sum(left / total for left, total in pairs if total > 0)


def rank(worker: WorkerState, demand: Demand) -> tuple[bool, int, float, str]:
    """The sort key of an eligible worker (lowest first)."""
    cold = not (demand.warm and worker.warm > 0)
    return cold, -worker.spec.priority, leftover(worker, demand.resources), worker.id


def choose(workers: Iterable[WorkerState], demand: Demand) -> WorkerState | None:
    """The worker to take ``demand`` (None: nothing fits now; the request waits)."""
    fit = [w for w in workers if eligible(w, demand)]
    if not fit:
        return None
    return min(fit, key=lambda w: rank(w, demand))
