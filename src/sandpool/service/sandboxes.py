"""Long-lived sandboxes for the API: each one owned by a tenant, counted against its quota
while it lives, and recorded in the store in step with the sandbox manager's state.

A sandbox's record is written once it runs, and moved on (paused, running, terminated with
its reason) by the calls here; a sandbox that the manager ends on its own (TTL, idle timeout,
OOM, death) is noticed by a watcher thread within ``WATCH_INTERVAL_S``, which then gives its
quota share back and marks its record ended. Every lookup takes the caller's tenant: another
tenant's sandbox is NotFound, exactly like one that never existed.

At start (``adopt``) the manager re-adopts the sandboxes that a previous server left running;
each one with a record is counted against its tenant again, and records whose sandbox is gone
are ended (``error``). An adopted sandbox without a record (the CLI's own, or one whose
server died between its start and its record) stays to the manager: no tenant sees it, and
its TTL or idle timeout ends it.

Every method blocks (containers, database): the routes call them in worker threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sandpool.config.resolved import ResolvedConfig
from sandpool.errors import (
    InvalidNetworkPolicy,
    InvalidRequest,
    QuotaExceeded,
    SandboxNotFound,
    SandpoolError,
)
from sandpool.sandbox import EndReason, SandboxInfo, SandboxManager, SandboxRequest, SandboxState
from sandpool.sandbox.usage import SandboxUsage, read_usage
from sandpool.service.leased import WATCH_INTERVAL_S, LeasedSandboxes
from sandpool.service.metrics import ServiceMetrics, create_source
from sandpool.service.quotas import Quota, TenantQuotas
from sandpool.service.sandbox_errors import check_network_change
from sandpool.sizes import parse_size
from sandpool.store import SandboxRecord, Store, TenantRecord

__all__ = ["WATCH_INTERVAL_S", "SandboxService", "sandbox_record"]

log = logging.getLogger("sandpool.server")
_ENDED = (SandboxState.TERMINATING.value, SandboxState.TERMINATED.value)


class SandboxService(LeasedSandboxes):
    """The tenants' sandboxes of one server; thread-safe (see the module docstring)."""

    def __init__(self, config: ResolvedConfig, manager: SandboxManager, store: Store,
                 ledger: TenantQuotas, metrics: ServiceMetrics,
                 quota_of: Callable[[TenantRecord], Quota]) -> None:  # fmt: skip
        super().__init__(store, ledger, metrics, quota_of)
        self.config, self.manager = config, manager
        self._start_watching()

    # ---- lookups -----------------------------------------------------------------------

    def live_info(self, sandbox_id: str) -> SandboxInfo | None:
        """The manager's view of the sandbox while it remembers it."""
        try:
            return self.manager.get(sandbox_id)
        except SandpoolError:
            return None

    def usage(self, sandbox_id: str) -> SandboxUsage:
        """What the sandbox uses now (its cgroup and disk; all None once it ended)."""
        return read_usage(self.manager.state_dir, sandbox_id)

    # ---- life --------------------------------------------------------------------------

    def create(self, tenant: TenantRecord, request: SandboxRequest) -> SandboxRecord:
        """Admit the sandbox against the tenant's quota (atomically), start it and record it."""
        pool = self.config.pool(request.pool)
        cpu = request.cpu if request.cpu is not None else (pool.cpu or 1.0)
        memory = parse_size(request.memory or pool.memory)
        try:
            lease = self.ledger.admit(tenant.id, self.quota_of(tenant), cpu, memory)
        except QuotaExceeded as exc:
            self.metrics.quota_refusals.labels(exc.reason or "other").inc()
            self.metrics.count_create(pool.name, "refused", "none", None)
            raise
        began = time.monotonic()
        try:
            info = self.manager.create(request)
        except BaseException:
            lease.release()
            self.metrics.count_create(pool.name, "failed", "none", None)
            raise
        self.metrics.count_create(pool.name, "ok", create_source(info), time.monotonic() - began)
        record = sandbox_record(tenant.id, info, request, cpu, memory)
        try:
            self.store.sandboxes.add(record)
        except BaseException:
            self._end_quietly(info.id)
            lease.release()
            raise
        self._hold(info.id, lease, tenant.id, info.pool)
        return record

    def pause(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """Freeze the sandbox (409 unless running)."""
        self.owned(tenant, sandbox_id)
        self._note(self.manager.pause(sandbox_id))
        return self.owned(tenant, sandbox_id)

    def resume(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """Thaw the sandbox (409 unless paused)."""
        self.owned(tenant, sandbox_id)
        self._note(self.manager.resume(sandbox_id))
        return self.owned(tenant, sandbox_id)

    def set_ttl(self, tenant: TenantRecord, sandbox_id: str, seconds: float) -> SandboxRecord:
        """End the sandbox ``seconds`` from now."""
        self.owned(tenant, sandbox_id)
        self._note(self.manager.set_ttl(sandbox_id, seconds))
        return self.owned(tenant, sandbox_id)

    def set_network(self, tenant: TenantRecord, sandbox_id: str, network: str | None,
                    allow: tuple[str, ...] | None) -> SandboxRecord:  # fmt: skip
        """Change the sandbox's network policy (400 naming the entry it cannot enforce; 409
        for a sandbox created without a network)."""
        self.owned(tenant, sandbox_id)
        check_network_change(self.manager.get(sandbox_id), network)
        try:
            self.manager.set_network(sandbox_id, network, allow)
        except InvalidNetworkPolicy as exc:
            raise InvalidRequest(f"allow: {exc.message}", hint=exc.hint, field="allow") from exc
        return self.owned(tenant, sandbox_id)

    def terminate(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """End the sandbox (idempotent: an ended one is answered as it is)."""
        record = self.owned(tenant, sandbox_id)
        if record.state in _ENDED:
            return record
        try:
            info = self.manager.terminate(sandbox_id, EndReason.KILLED)
        except SandboxNotFound:
            info = None
        self._finish(sandbox_id, info)
        return self.owned(tenant, sandbox_id)

    # ---- keeping the records in step ------------------------------------------------------

    def _note(self, info: SandboxInfo) -> None:
        reason = info.reason.value if info.reason else None
        self.store.sandboxes.set_state(
            info.id, info.state.value, reason=reason, ready_at=info.ready_at,
            expires_at=info.deadline,
        )  # fmt: skip

    def _finish(self, sandbox_id: str, info: SandboxInfo | None) -> None:
        """The sandbox has ended: give its share back and mark its record (once)."""
        reason = info.reason.value if info and info.reason else None
        self._end_record(sandbox_id, reason, info.ended_at if info else None)

    def _sync(self, sandbox_id: str) -> None:
        """Finish the sandbox if the manager has ended it."""
        if not self._holds(sandbox_id):
            return
        info = self.live_info(sandbox_id)
        if info is None or info.state == SandboxState.TERMINATED:
            self._finish(sandbox_id, info)

    def _end_quietly(self, sandbox_id: str) -> None:
        try:
            self.manager.terminate(sandbox_id, EndReason.ERROR)
        except SandpoolError:
            log.exception("sandbox %s: terminating failed", sandbox_id)

    # ---- start and stop -----------------------------------------------------------------

    def adopt(self) -> tuple[int, int]:
        """Re-adopt what a previous server left running (see the module docstring); how many
        sandboxes were re-adopted and how many records were ended."""
        adopted, _ = self.manager.adopt()
        records = {r.id: r for r in self.store.sandboxes.unfinished()}
        owned = [i for i in adopted if i in records]
        for sandbox_id in set(adopted) - set(owned):  # e.g. one of `sandpool sandbox`
            log.info("sandbox %s re-adopted without a record: no tenant sees it", sandbox_id)
        for sandbox_id in owned:
            record = records[sandbox_id]
            lease = self.ledger.restore(record.tenant_id, record.cpu, record.memory)
            self._hold(sandbox_id, lease, record.tenant_id, record.pool)
            self._note(self.manager.get(sandbox_id))
        lost = [r for r in records.values() if r.id not in set(owned)]
        for record in lost:
            self.store.sandboxes.set_state(record.id, SandboxState.TERMINATED.value,
                                           reason=EndReason.ERROR.value,
                                           ended_at=time.time())  # fmt: skip
        return len(owned), len(lost)

    def close(self, terminate: bool = True) -> None:
        """Stop the watcher; terminate every sandbox (eight at a time) and end its record,
        or (``terminate`` false) leave them running for the next server to adopt."""
        self._stop_watching()
        if not terminate:
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._terminate_for_close, self._held()))

    def _terminate_for_close(self, sandbox_id: str) -> None:
        try:
            info: SandboxInfo | None = self.manager.terminate(sandbox_id, EndReason.KILLED)
        except SandpoolError:
            info = self.live_info(sandbox_id)
        self._finish(sandbox_id, info)


def sandbox_record(tenant_id: str, info: SandboxInfo, request: SandboxRequest, cpu: float,
                   memory: int) -> SandboxRecord:  # fmt: skip
    """The store's record of a sandbox that started."""
    limits = {"cpu": request.cpu, "memory": request.memory, "pids": request.pids,
              "disk": request.disk, "ttl": info.ttl, "idleTimeout": info.idle_timeout,
              "containerRuntime": info.container_runtime,
              "gvisorPlatform": info.gvisor_platform}  # fmt: skip
    return SandboxRecord(id=info.id, tenant_id=tenant_id, pool=info.pool, state=info.state.value,
                         created_at=info.created_at, image=info.image, labels=dict(info.labels),
                         limits=limits, cpu=cpu, memory=memory, ready_at=info.ready_at,
                         expires_at=info.deadline)  # fmt: skip
