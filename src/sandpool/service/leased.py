"""What both sandbox backends keep (``SandboxService`` runs the sandboxes here,
``dispatch.remote_sandboxes.RemoteSandboxes`` on workers): each live sandbox's quota lease,
tenant and pool in memory, and a watcher thread that notices, every ``WATCH_INTERVAL_S``, a
sandbox that ended on its own (``_sync``, each backend's own way of asking) and then gives
its share back and ends its record exactly once (``_end_record``).

Lookups take the caller's tenant: another tenant's sandbox is NotFound, exactly like one that
never existed. ``pool_of`` answers from memory while the sandbox lives (the exec and file
routes' check), ``owned`` from the store after bringing the record up to date.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandpool.errors import NotFound
from sandpool.sandbox import EndReason, SandboxState
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.quotas import Quota, QuotaLease, TenantQuotas
from sandpool.store import SandboxRecord, Store, TenantRecord

__all__ = ["WATCH_INTERVAL_S", "LeasedSandboxes", "not_found"]

log = logging.getLogger("sandpool.server")
WATCH_INTERVAL_S = 0.5


@dataclass(frozen=True)
class _Live:
    lease: QuotaLease
    tenant_id: str
    pool: str


class LeasedSandboxes:
    """The shared part of a backend; a subclass defines ``_sync`` and calls
    ``_start_watching`` once its own fields are set."""

    def __init__(self, store: Store, ledger: TenantQuotas, metrics: ServiceMetrics,
                 quota_of: Callable[[TenantRecord], Quota]) -> None:  # fmt: skip
        self.store, self.ledger, self.metrics, self.quota_of = store, ledger, metrics, quota_of
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="sandbox-records", daemon=True)

    # ---- lookups -----------------------------------------------------------------------

    def owned(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """The tenant's sandbox record, after bringing it up to date; NotFound otherwise."""
        self._sync(sandbox_id)  # ended meanwhile: the record read below says so
        record = self.store.sandboxes.get(tenant.id, sandbox_id)
        if record is None:
            raise not_found(sandbox_id)
        return record

    def pool_of(self, tenant: TenantRecord, sandbox_id: str) -> str:
        """The pool of the tenant's sandbox (NotFound otherwise): from memory while it lives
        (no database query), else from its record."""
        with self._lock:
            live = self._live.get(sandbox_id)
        if live is None:
            return self.owned(tenant, sandbox_id).pool
        if live.tenant_id != tenant.id:
            raise not_found(sandbox_id)
        return live.pool

    def list(self, tenant: TenantRecord, *, state: str | None, pool: str | None,
             labels: Mapping[str, str]) -> builtins.list[SandboxRecord]:  # fmt: skip
        """The tenant's sandboxes, newest first, filtered."""
        self.reconcile()
        states = (state,) if state else ()
        found = self.store.sandboxes.list(tenant.id, states=states, labels=dict(labels))
        return [r for r in found if pool is None or r.pool == pool]

    # ---- the live sandboxes --------------------------------------------------------------

    def _hold(self, sandbox_id: str, lease: QuotaLease, tenant_id: str, pool: str) -> None:
        with self._lock:
            self._live[sandbox_id] = _Live(lease, tenant_id, pool)

    def _holds(self, sandbox_id: str) -> bool:
        with self._lock:
            return sandbox_id in self._live

    def _held(self) -> builtins.list[str]:
        with self._lock:
            return list(self._live)

    def _end_record(self, sandbox_id: str, reason: str | None, ended_at: float | None) -> None:
        """The sandbox has ended: give its share back and mark its record (once)."""
        with self._lock:
            live = self._live.pop(sandbox_id, None)
        if live is None:
            return
        live.lease.release()
        self.store.sandboxes.set_state(sandbox_id, SandboxState.TERMINATED.value,
                                       reason=reason or EndReason.ERROR.value,
                                       ended_at=ended_at or time.time())  # fmt: skip

    def _sync(self, sandbox_id: str) -> None:
        """End the record of a held sandbox that ended on its own (each backend's own way)."""
        raise NotImplementedError

    def reconcile(self) -> None:
        """Bring every held sandbox's record up to date."""
        for sandbox_id in self._held():
            self._sync(sandbox_id)

    # ---- the watcher -----------------------------------------------------------------------

    def _start_watching(self) -> None:
        self._watcher.start()

    def _stop_watching(self) -> None:
        self._closed.set()
        self._watcher.join()

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_INTERVAL_S):
            try:
                self.reconcile()
            except Exception:  # Redis or the database away for a moment: try again later
                log.exception("keeping the sandbox records in step failed")


def not_found(sandbox_id: str) -> NotFound:
    """The answer for an unknown id and for another tenant's sandbox alike."""
    return NotFound(f"no sandbox with id '{sandbox_id}'", hint="GET /v1/sandboxes lists yours")
