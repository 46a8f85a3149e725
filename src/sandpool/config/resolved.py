"""Resolved configuration: every fallback applied, plain dataclasses with no validation library.

The worker and runtime layers read only these types, so the run path can load them from a
JSON cache without importing pydantic (see ``config.cache``).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sandpool.errors import UnknownPool
from sandpool.network.settings import DEFAULT_RANGE, NetworkSettings

if TYPE_CHECKING:  # the run path imports this module without pydantic
    from sandpool.config.models import PoolConfig, SandpoolConfig

__all__ = ["ResolvedConfig", "ResolvedPool", "WarmPool", "resolve"]


@dataclass(frozen=True)
class WarmPool:
    """A pool's ``warmPool``: how many sandboxes to keep started ahead, made with this image
    and these limits (None: the pool's default, as a create that names none gets)."""

    size: int = 0
    image: str | None = None
    memory: str | None = None
    pids: int | None = None
    cpu: float | None = None
    disk: str | None = None


@dataclass(frozen=True)
class ResolvedPool:
    """One pool with its effective pod runtime and container runtime."""

    name: str
    mode: str
    gpu_type: str
    runtime: str | None
    container_runtime: str
    gvisor_platform: str | None
    gvisor_root: str
    gvisor_extra_args: tuple[str, ...]
    container_start_concurrency: int | None
    memory: str
    pids: int
    cpu: float | None
    timeout: float | None
    disk: str = "1Gi"
    max_output: str = "16Mi"
    gpu_sharing: bool = False
    ttl: float | None = None
    idle_timeout: float | None = None
    warm_pool: WarmPool = field(default_factory=lambda: WarmPool())
    network: str = "none"  # containerDefaults.network / .allow
    allow: tuple[str, ...] = ()
    network_range: str = DEFAULT_RANGE  # worker.network, copied into each pool
    network_refuse: tuple[str, ...] = ()
    dns_upstream: str = ""
    ip_forward: bool = True

    @property
    def network_settings(self) -> NetworkSettings:
        """The worker's network settings (``worker.network``)."""
        return NetworkSettings(self.network_range, self.network_refuse, self.dns_upstream,
                               self.ip_forward)  # fmt: skip

    @property
    def is_gvisor(self) -> bool:
        """Whether user containers of this pool run under runsc."""
        return self.container_runtime == "gvisor"

    def public_dict(self) -> dict[str, Any]:
        """The camelCase view printed by ``config show`` (SPEC §4)."""
        return {
            "mode": self.mode,
            "gpuType": self.gpu_type,
            "runtime": self.runtime,
            "containerRuntime": self.container_runtime,
            "containerRuntimeConfig": {
                "gvisorPlatform": self.gvisor_platform,
                "gvisorRoot": self.gvisor_root,
                "gvisorExtraArgs": list(self.gvisor_extra_args),
            },
            "containerStartConcurrency": self.container_start_concurrency,
            "containerDefaults": {
                "memory": self.memory,
                "pids": self.pids,
                "cpu": self.cpu,
                "timeout": self.timeout,
                "network": self.network,
                "allow": list(self.allow),
                "disk": self.disk,
                "maxOutput": self.max_output,
                "gpuSharing": self.gpu_sharing,
                "ttl": self.ttl,
                "idleTimeout": self.idle_timeout,
            },
            "warmPool": asdict(self.warm_pool),
        }


@dataclass(frozen=True)
class ResolvedConfig:
    """The worker settings and every pool, resolved."""

    runc_path: str
    runsc_path: str
    state_dir: str
    default_image: str
    cgroup_parent: str = "sandpool"
    user_namespace_base: int = 100000
    pools: dict[str, ResolvedPool] = field(default_factory=dict)

    def pool(self, name: str) -> ResolvedPool:
        """The pool called ``name``, or UnknownPool naming the pools that exist."""
        try:
            return self.pools[name]
        except KeyError:
            raise unknown_pool(name, list(self.pools)) from None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that ``from_json`` turns back into an equal object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedConfig:
        """Inverse of ``to_json``."""
        pools = {
            name: ResolvedPool(
                **{
                    **p,
                    **{k: tuple(p[k]) for k in _TUPLES if k in p},
                    "warm_pool": WarmPool(**p.get("warm_pool") or {}),
                }
            )
            for name, p in data["pools"].items()
        }
        return cls(**{**data, "pools": pools})


_TUPLES = ("gvisor_extra_args", "allow", "network_refuse")  # lists in JSON


def unknown_pool(name: str, known: list[str]) -> UnknownPool:
    """The error for a pool name that is not configured, with a did-you-mean."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(sorted(known)) or "none"
    return UnknownPool(f"unknown pool '{name}'", hint=f"{hint}configured pools: {listed}")


def _resolve_pool(name: str, pool: PoolConfig, config: SandpoolConfig) -> ResolvedPool:
    crt = pool.container_runtime or config.worker.container_runtime
    rc = pool.container_runtime_config
    defaults = pool.container_defaults
    return ResolvedPool(
        name=name,
        mode=pool.mode,
        gpu_type=pool.gpu_type,
        runtime=pool.runtime or None,
        container_runtime=crt.value if crt else "runc",
        gvisor_platform=rc.gvisor_platform.value if rc.gvisor_platform else None,
        gvisor_root=rc.gvisor_root,
        gvisor_extra_args=tuple(rc.gvisor_extra_args),
        container_start_concurrency=pool.container_start_concurrency,
        memory=defaults.memory,
        pids=defaults.pids,
        cpu=defaults.cpu,
        timeout=defaults.timeout,
        disk=defaults.disk,
        max_output=defaults.max_output,
        gpu_sharing=defaults.gpu_sharing,
        ttl=defaults.ttl,
        idle_timeout=defaults.idle_timeout,
        network=defaults.network,
        allow=tuple(defaults.allow),
        network_range=config.worker.network.address_range,
        network_refuse=tuple(config.worker.network.refuse),
        dns_upstream=config.worker.network.dns_upstream,
        ip_forward=config.worker.network.ip_forward,
        warm_pool=WarmPool(**pool.warm_pool.model_dump()),
    )


def resolve(config: SandpoolConfig) -> ResolvedConfig:
    """Apply the fallbacks of SPEC §1: pool value, else worker value, else the default."""
    worker = config.worker
    return ResolvedConfig(
        runc_path=worker.runc_path,
        runsc_path=worker.runsc_path,
        state_dir=worker.state_dir,
        default_image=worker.default_image,
        cgroup_parent=worker.cgroup_parent,
        user_namespace_base=worker.user_namespace_base,
        pools={name: _resolve_pool(name, p, config) for name, p in worker.pools.items()},
    )
