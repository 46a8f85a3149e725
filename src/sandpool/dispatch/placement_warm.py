"""Whether a request could claim one of its pool's warm sandboxes (issue 18), as the gateway
sees it from its own configuration: placement then prefers a worker that reports one ready.

This is a hint for ranking, not the claim: the worker still checks the match exactly
(``sandbox.warm``) and falls back to a cold start on a miss. The check here is the warm
pool's template (``warmPool`` image and limits, else the pool's own) against what the
request names: the image reference, cpu, memory, pids, disk and network policy; a one-shot
run also needs no GPU and network ``none`` (as ``sandbox.warm_run`` does).
"""

from __future__ import annotations

from typing import Protocol

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import SandpoolError
from sandpool.images import choose_reference
from sandpool.network.run import run_policy
from sandpool.sandbox.models import SandboxRequest
from sandpool.sandbox.warm import warm_request
from sandpool.sizes import parse_size
from sandpool.worker.request import RunRequest

__all__ = ["warm_could_serve", "warm_could_serve_run"]


class _Asks(Protocol):
    """What a sandbox create and a one-shot run both name."""

    @property
    def image(self) -> str | None: ...
    @property
    def cpu(self) -> float | None: ...
    @property
    def memory(self) -> str | None: ...
    @property
    def pids(self) -> int | None: ...
    @property
    def disk(self) -> str | None: ...
    @property
    def network(self) -> str | None: ...
    @property
    def allow(self) -> tuple[str, ...] | None: ...


def _matches(asks: _Asks, pool: ResolvedPool, default_image: str) -> bool:
    if pool.warm_pool.size <= 0:
        return False
    warm = warm_request(pool)
    if choose_reference(asks.image, default_image) != choose_reference(warm.image, default_image):
        return False
    try:
        return (
            (asks.cpu or pool.cpu) == (warm.cpu or pool.cpu)
            and (asks.pids or pool.pids) == (warm.pids or pool.pids)
            and parse_size(asks.memory or pool.memory) == parse_size(warm.memory or pool.memory)
            and parse_size(asks.disk or pool.disk) == parse_size(warm.disk or pool.disk)
            and run_policy(asks, pool) == run_policy(warm, pool)
        )  # fmt: skip
    except (SandpoolError, ValueError):
        return False  # a bad value: the worker names it


def warm_could_serve(request: SandboxRequest, config: ResolvedConfig) -> bool:
    """Whether a warm sandbox of the request's pool would match this create."""
    pool = config.pools.get(request.pool)
    return (
        pool is not None
        and request.workdir is None
        and _matches(request, pool, config.default_image)
    )


def warm_could_serve_run(request: RunRequest, pool: ResolvedPool, default_image: str) -> bool:
    """Whether a warm container of ``pool`` would match this one-shot run."""
    if request.gpus or request.mounts or request.workdir is not None:
        return False
    try:
        if run_policy(request, pool).mode != "none":
            return False
    except SandpoolError:
        return False
    return _matches(request, pool, default_image)
