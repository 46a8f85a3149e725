"""The dashboard's reads on a gateway (``sandpool server --redis``), where workers run the
sandboxes: live counts from the store's records (every gateway shares them), and one
sandbox's live view and usage from the worker holding it, through the same backend the
API's ``GET /v1/sandboxes/{id}`` and ``…/usage`` use."""

from __future__ import annotations

from collections import Counter

from sandpool.sandbox.models import SandboxInfo
from sandpool.sandbox.usage import SandboxUsage
from sandpool.service.context import ServiceContext
from sandpool.service.sandbox_backend import SandboxBackend
from sandpool.store.records import SandboxRecord

__all__ = ["live_counts", "remote_detail"]


def live_counts(context: ServiceContext) -> Counter[tuple[str, str, str]]:
    """(tenant id, pool, state) -> sandboxes recorded as not yet terminated."""
    return Counter((r.tenant_id, r.pool, r.state) for r in context.store.sandboxes.unfinished())


Detail = tuple[SandboxInfo | None, SandboxUsage | None]


def remote_detail(backend: SandboxBackend, record: SandboxRecord) -> Detail:
    """The worker's view of the sandbox and its usage (None, None once it ended or while its
    worker does not answer: the page then shows the record alone)."""
    if record.state == "terminated":
        return None, None
    info = backend.live_info(record.id)
    if info is None:
        return None, None
    return info, backend.usage(record.id)
