"""The dashboard's reads on a gateway (``sandpool server --redis``), where workers run the
sandboxes: live counts from the store's records (every gateway shares them), and one
sandbox's live view, usage, execs and their output from the worker holding it, through the
gateway's backend (``dispatch.remote_sandboxes``: the calls the API's ``GET
/v1/sandboxes/{id}`` and ``…/usage`` make, and two the dashboard alone needs)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sandpool.sandbox.models import ExecSummary, SandboxInfo
from sandpool.sandbox.usage import SandboxUsage
from sandpool.service.context import ServiceContext
from sandpool.service.dashboard.exec_output import ExecOutput
from sandpool.service.sandbox_backend import SandboxBackend
from sandpool.store.records import SandboxRecord
from sandpool.store.sandbox_listing import SandboxFilter, SandboxListing

__all__ = [
    "CHART_RECORDS",
    "RemoteView",
    "WorkerExecs",
    "live_counts",
    "oom_ends_by_pool",
    "recent_records",
    "remote_detail",
    "remote_exec_output",
]

CHART_RECORDS = 500  # the newest sandboxes the start-latency chart of a gateway counts


@runtime_checkable
class WorkerExecs(Protocol):
    """A backend that can ask a sandbox's worker for its execs (None: it does not answer)."""

    def execs(self, sandbox_id: str) -> list[ExecSummary] | None: ...

    def exec_output(self, sandbox_id: str, exec_id: str) -> ExecOutput | None: ...


@dataclass(frozen=True)
class RemoteView:
    """What the worker holding a sandbox says of it (all empty once it ended, or while the
    worker does not answer: the page then shows the record alone)."""

    info: SandboxInfo | None = None
    usage: SandboxUsage | None = None
    execs: list[ExecSummary] = field(default_factory=list)


def live_counts(context: ServiceContext) -> Counter[tuple[str, str, str]]:
    """(tenant id, pool, state) -> sandboxes recorded as not yet terminated."""
    return Counter((r.tenant_id, r.pool, r.state) for r in context.store.sandboxes.unfinished())


def remote_detail(backend: SandboxBackend, record: SandboxRecord) -> RemoteView:
    """The worker's view of the sandbox, its usage and its execs."""
    if record.state == "terminated":
        return RemoteView()
    info = backend.live_info(record.id)
    if info is None:
        return RemoteView()
    execs = backend.execs(record.id) if isinstance(backend, WorkerExecs) else None
    return RemoteView(info, backend.usage(record.id), execs or [])


def remote_exec_output(backend: SandboxBackend, record: SandboxRecord,
                       exec_id: str) -> ExecOutput | None:  # fmt: skip
    """The exec's output so far, from the worker (None: ended, or the worker away)."""
    if record.state == "terminated" or not isinstance(backend, WorkerExecs):
        return None
    return backend.exec_output(record.id, exec_id)


def recent_records(listing: SandboxListing, tenant_id: str | None) -> list[SandboxRecord]:
    """The newest ``CHART_RECORDS`` sandboxes of the tenant (every tenant's when None)."""
    return listing.page(SandboxFilter(tenant_id), 0, CHART_RECORDS).records


def oom_ends_by_pool(listing: SandboxListing, tenant_id: str | None) -> Counter[str]:
    """Pool -> recent sandboxes that ended for an OOM kill (their records' reason)."""
    return Counter(r.pool for r in listing.ended_with(("oom",), tenant_id))
