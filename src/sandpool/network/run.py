"""The network of one one-shot run: its policy (the run's, else the pool's) and set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sandpool.errors import InvalidNetworkPolicy
from sandpool.network.attach import ContainerNetwork
from sandpool.network.policy import NetworkPolicy, parse_policy
from sandpool.network.settings import NetworkSettings

__all__ = ["open_for_run", "run_policy"]

HINT = "--network none|allow|open, --allow CIDR|HOST:PORT|DOMAIN (repeatable)"


class _Asks(Protocol):
    @property
    def network(self) -> str | None: ...
    @property
    def allow(self) -> tuple[str, ...] | None: ...


class _PoolDefaults(Protocol):
    @property
    def network(self) -> str: ...
    @property
    def allow(self) -> tuple[str, ...]: ...
    @property
    def network_settings(self) -> NetworkSettings: ...


def run_policy(request: _Asks, pool: _PoolDefaults) -> NetworkPolicy:
    """The run's ``network``/``allow`` (``allow`` alone means mode ``allow``), else the pool's
    ``containerDefaults``; InvalidNetworkPolicy names the fix."""
    mode, allow = request.network, request.allow
    if mode is None and allow is None:
        mode, allow = pool.network, pool.allow
    elif mode is None:
        mode = "allow"
    try:
        return parse_policy(mode or "none", tuple(allow or ()))
    except ValueError as exc:
        raise InvalidNetworkPolicy(str(exc), hint=HINT) from exc


def open_for_run(policy: NetworkPolicy, pool: _PoolDefaults, container_id: str,
                 container_dir: Path, state_dir: Path) -> ContainerNetwork | None:  # fmt: skip
    """The container's network (None for ``none``: the runtime's own empty namespace)."""
    if not policy.networked:
        return None
    return ContainerNetwork.open(container_id, container_dir, state_dir, policy,
                                 pool.network_settings)  # fmt: skip
