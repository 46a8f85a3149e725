"""What the routes share: the configuration, the store, who is calling, the quotas, the runs
and the metrics; one per server (tests build their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from fastapi import Request

from sandpool.config.models import GatewayConfig
from sandpool.config.resolved import ResolvedConfig
from sandpool.service.apikeys import Principal
from sandpool.service.auth import Authenticator
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.quotas import Quota, QuotaLedger, TenantQuotas
from sandpool.service.runs import RunService
from sandpool.service.sandbox_backend import SandboxBackend
from sandpool.sizes import parse_size
from sandpool.store import Store, TenantRecord

__all__ = ["ServiceContext", "authenticate", "context_of"]

T = TypeVar("T")


@dataclass
class ServiceContext:
    """One server's state; ``stopping`` turns /readyz to 503 while it shuts down;
    ``on_stop``: called (in a thread) as it stops, after its runs and before its executor
    closes (the serve socket of the same daemon: ``service.daemon``)."""

    config: ResolvedConfig
    gateway: GatewayConfig
    store: Store
    auth: Authenticator
    runs: RunService
    ledger: TenantQuotas = field(default_factory=QuotaLedger)  # a gateway: RedisQuotas
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    stopping: bool = False
    sandboxes: SandboxBackend | None = None  # None: this server's executor runs no sandboxes
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def quota_of(self, tenant: TenantRecord) -> Quota:
        """The tenant's own quota where it has one, the configuration's default elsewhere."""
        default = self.gateway.tenant_quota
        return Quota(
            concurrent=_first(tenant.max_concurrent, default.concurrent),
            cpu=_first(tenant.max_cpu, default.cpu),
            memory=_first(tenant.max_memory, parse_size(default.memory)),
            creates_per_second=_first(tenant.creates_per_second, default.creates_per_second),
        )


def _first(own: T | None, default: T) -> T:
    return default if own is None else own


def context_of(request: Request) -> ServiceContext:
    """The server's context (set on the app at creation)."""
    context = request.app.state.context
    assert isinstance(context, ServiceContext)
    return context


async def authenticate(request: Request) -> Principal:
    """The caller of ``request`` (a FastAPI dependency): a key verified a moment ago is
    answered from memory, on the event loop; any other is looked up in a worker thread, as
    the store may be a network database. Its tenant goes into the access log."""
    auth, header = context_of(request).auth, request.headers.get("authorization")
    principal = auth.cached(header)
    if principal is None:
        principal = await anyio.to_thread.run_sync(auth.principal, header)
    request.scope.setdefault("state", {})["tenant"] = principal.tenant_name or "(admin)"
    return principal
