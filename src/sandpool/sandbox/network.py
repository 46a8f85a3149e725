"""A sandbox's network policy (``sandpool.network``) as the manager handles it: the policy a
change asks for, and an adopted sandbox's DNS filter, started again in its new owner."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sandpool.config.resolved import ResolvedPool
from sandpool.errors import SandpoolError
from sandpool.network.attach import ContainerNetwork
from sandpool.network.policy import NetworkPolicy
from sandpool.network.run import run_policy
from sandpool.sandbox.models import SandboxInfo, SandboxRequest

__all__ = ["asked_policy", "reattach_network"]

log = logging.getLogger(__name__)


def asked_policy(pool: ResolvedPool, network: str | None,
                 allow: Sequence[str] | None) -> NetworkPolicy:  # fmt: skip
    """The policy ``network``/``allow`` ask for, as at create (``allow`` alone means
    ``allow``; neither: the pool's default); InvalidNetworkPolicy names the fix."""
    asked = SandboxRequest(pool.name, network=network,
                           allow=None if allow is None else tuple(allow))  # fmt: skip
    return run_policy(asked, pool)


def reattach_network(info: SandboxInfo, directory: Path, state_dir: Path,
                     pool: ResolvedPool) -> ContainerNetwork | None:  # fmt: skip
    """An adopted sandbox's DNS filter, in this process now (its namespace, veth and rules
    outlived the dead owner); None for ``none``, or if it cannot (names stop resolving)."""
    if info.network == "none":
        return None
    try:
        return ContainerNetwork.reattach(info.id, directory, state_dir, pool.network_settings)
    except SandpoolError as error:  # it runs on: only its names stop resolving
        log.warning("sandbox %s: no DNS filter after adoption: %s", info.id, error)
        return None
