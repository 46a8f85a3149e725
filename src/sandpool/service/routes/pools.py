"""``/v1/pools``: the pools of the server's configuration, their runtimes and default limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandpool.config.resolved import ResolvedPool
from sandpool.errors import NotFound
from sandpool.service.apikeys import Principal
from sandpool.service.context import authenticate, context_of
from sandpool.service.schemas import PoolLimits, PoolOut

__all__ = ["pool_out", "router"]

router = APIRouter(prefix="/v1/pools", tags=["pools"])
Caller = Annotated[Principal, Depends(authenticate)]


def pool_out(pool: ResolvedPool) -> PoolOut:
    """The API's view of one pool."""
    limits = PoolLimits(cpu=pool.cpu, memory=pool.memory, pids=pool.pids, timeout=pool.timeout,
                        disk=pool.disk, max_output=pool.max_output)  # fmt: skip
    return PoolOut(name=pool.name, container_runtime=pool.container_runtime,
                   gvisor_platform=pool.gvisor_platform, runtime=pool.runtime,
                   limits=limits)  # fmt: skip


@router.get("")
def list_pools(request: Request, caller: Caller) -> list[PoolOut]:
    """Every pool, by name."""
    pools = context_of(request).config.pools
    return [pool_out(pools[name]) for name in sorted(pools)]


@router.get("/{name}")
def get_pool(name: str, request: Request, caller: Caller) -> PoolOut:
    """One pool."""
    pools = context_of(request).config.pools
    if name not in pools:
        raise NotFound(f"no pool named '{name}'", hint="GET /v1/pools lists them")
    return pool_out(pools[name])
