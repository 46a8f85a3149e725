"""The seam between the public sandbox routes and whatever runs the sandboxes.

``SandboxBackend`` is what ``/v1/sandboxes`` calls: the local ``SandboxService`` (the
embedded default: this server runs them) or ``dispatch.remote_sandboxes.RemoteSandboxes``
(``sandpool server --redis``: workers run them, the gateway keeps the records and quotas).
``SandboxAccess`` is what the exec and file routes need where the sandbox actually runs: the
owner check and the manager (the local service, or a worker's own view of its sandboxes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sandpool.sandbox import SandboxInfo, SandboxManager, SandboxRequest
from sandpool.sandbox.usage import SandboxUsage
from sandpool.service.metrics import ServiceMetrics
from sandpool.store import SandboxRecord, TenantRecord

__all__ = ["SandboxAccess", "SandboxBackend"]


class SandboxBackend(Protocol):
    """The tenants' sandboxes as the routes see them; every method blocks."""

    def owned(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord: ...

    def live_info(self, sandbox_id: str) -> SandboxInfo | None: ...

    def usage(self, sandbox_id: str) -> SandboxUsage | None: ...

    def list(self, tenant: TenantRecord, *, state: str | None, pool: str | None,
             labels: Mapping[str, str]) -> list[SandboxRecord]: ...  # fmt: skip

    def create(self, tenant: TenantRecord, request: SandboxRequest) -> SandboxRecord: ...

    def pause(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord: ...

    def resume(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord: ...

    def set_ttl(self, tenant: TenantRecord, sandbox_id: str, seconds: float) -> SandboxRecord: ...

    def set_network(self, tenant: TenantRecord, sandbox_id: str, network: str | None,
                    allow: tuple[str, ...] | None) -> SandboxRecord: ...  # fmt: skip

    def terminate(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord: ...

    def close(self, terminate: bool = True) -> None: ...


class SandboxAccess(Protocol):
    """Where the sandboxes run: the owner check (``pool_of``: the sandbox's pool, NotFound
    for an unknown id or another tenant's), their manager and the metrics its execs are
    counted in."""

    @property
    def manager(self) -> SandboxManager: ...

    @property
    def metrics(self) -> ServiceMetrics: ...

    def pool_of(self, tenant: TenantRecord, sandbox_id: str) -> str: ...
