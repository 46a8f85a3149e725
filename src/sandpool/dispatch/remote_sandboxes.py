"""The tenants' sandboxes of a gateway (``sandpool server --redis``): workers run them, the
gateway admits each against its tenant's quota (atomically across gateways, in Redis:
``RedisQuotas``; the lease is bound to the sandbox once it exists), places
it through the ``Dispatcher``, and keeps its record in the store (``limits.worker`` names the
worker holding it). Lookups, pauses, TTLs and terminations go to that worker's public side
(``dispatch.worker_public``); execs and files are proxied there (``dispatch.public_routes``).

A sandbox that ends on its worker (TTL, idle timeout, OOM) is reported by the worker's
heartbeat into the dispatch's record; one whose worker is lost is marked ``worker_lost``
there by the reaper. A watcher thread reads those records every ``WATCH_INTERVAL_S`` and
then gives the quota share back and ends the store's record with the same reason.

At start (``adopt``) the records still running are counted against their tenants again if
the dispatch still knows them running; the others are ended. ``close`` leaves the sandboxes
to their workers (other gateways may serve them): they end by their TTL or a terminate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from sandpool.config.resolved import ResolvedConfig
from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.worker_public import API_PREFIX
from sandpool.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    SandpoolError,
    ServiceError,
    ServiceUnavailable,
    WorkerLost,
)
from sandpool.sandbox import EndReason, SandboxInfo, SandboxRequest, SandboxState
from sandpool.sandbox.models import ExecSummary
from sandpool.sandbox.usage import SandboxUsage
from sandpool.service.dashboard.exec_output import ExecOutput, summaries_from_json
from sandpool.service.leased import LeasedSandboxes
from sandpool.service.metrics import ServiceMetrics, create_source
from sandpool.service.quotas import Quota, TenantQuotas
from sandpool.service.sandboxes import sandbox_record
from sandpool.sizes import parse_size
from sandpool.store import SandboxRecord, Store, TenantRecord

__all__ = ["RemoteSandboxes", "worker_error"]

log = logging.getLogger("sandpool.server")
_ENDED = (SandboxState.TERMINATING.value, SandboxState.TERMINATED.value)
_BY_STATUS: dict[int, type[ServiceError]] = {400: InvalidRequest, 404: NotFound, 409: Conflict,
                                             413: PayloadTooLarge}  # fmt: skip


def worker_error(answer: httpx.Response) -> ServiceError:
    """A worker's error answer (the public API's shape), to raise at the gateway as it is."""
    try:
        body = dict(answer.json())
    except ValueError:
        body = {"message": answer.text[:200]}
    kind = _BY_STATUS.get(answer.status_code, ServiceUnavailable)
    error = kind(str(body.get("message") or "the worker failed"), hint=body.get("hint"))
    error.status, error.code = answer.status_code, str(body.get("code") or kind.code)
    return error


class RemoteSandboxes(LeasedSandboxes):
    """A ``SandboxBackend`` over the dispatch; thread-safe (see the module docstring)."""

    def __init__(self, config: ResolvedConfig, dispatcher: Dispatcher, store: Store,
                 ledger: TenantQuotas, metrics: ServiceMetrics,
                 quota_of: Callable[[TenantRecord], Quota], token: str) -> None:  # fmt: skip
        super().__init__(store, ledger, metrics, quota_of)
        self.config, self.dispatcher = config, dispatcher
        self.client = httpx.Client(headers={"authorization": f"Bearer {token}"},
                                   timeout=httpx.Timeout(120.0, connect=5.0))  # fmt: skip
        self._start_watching()

    # ---- lookups -----------------------------------------------------------------------

    def live_info(self, sandbox_id: str) -> SandboxInfo | None:
        """Its worker's view while it runs there (None: ended, or the worker away)."""
        try:
            return self._control("GET", sandbox_id)
        except ServiceError:
            return None

    def usage(self, sandbox_id: str) -> SandboxUsage | None:
        """Its usage as its worker reads it (None: ended, or the worker away)."""
        found = self._read(sandbox_id, "/usage")
        return SandboxUsage.from_json(found) if isinstance(found, dict) else None

    def execs(self, sandbox_id: str) -> list[ExecSummary] | None:
        """Its execs as its worker lists them, for the dashboard (None: ended, or away)."""
        found = self._read(sandbox_id, "/execs")
        return None if not isinstance(found, list) else summaries_from_json(sandbox_id, found)

    def exec_output(self, sandbox_id: str, exec_id: str) -> ExecOutput | None:
        """An exec's output so far, for the dashboard (None: gone, or its worker away)."""
        found = self._read(sandbox_id, f"/execs/{exec_id}/output")
        return None if not isinstance(found, dict) else ExecOutput.from_json(found)

    def _read(self, sandbox_id: str, suffix: str) -> Any:
        """A worker's JSON answer about the sandbox, or None (ended, or the worker away)."""
        try:
            address = self.address_of(sandbox_id)
            answer = self.client.get(f"{address.rstrip('/')}{API_PREFIX}/sandboxes/"
                                     f"{sandbox_id}{suffix}")  # fmt: skip
            return answer.json() if answer.status_code == 200 else None
        except (SandpoolError, httpx.HTTPError, ValueError):
            return None

    def address_of(self, sandbox_id: str) -> str:
        """The internal address of the worker holding it (WorkerLost, NotFound)."""
        return self.dispatcher.locate(sandbox_id)

    # ---- life --------------------------------------------------------------------------

    def create(self, tenant: TenantRecord, request: SandboxRequest) -> SandboxRecord:
        """Admit it against the tenant's quota, have a worker of its pool start it, record
        it (PlacementTimeout, BacklogFull, or the worker's own error otherwise)."""
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
            record, source = self._start(tenant, request, cpu, memory)
        except BaseException:
            lease.release()
            self.metrics.count_create(pool.name, "failed", "none", None)
            raise
        # counted here as the embedded server counts its own: the time includes the dispatch
        self.metrics.count_create(pool.name, "ok", source, time.monotonic() - began)
        self._hold(record.id, lease, tenant.id, record.pool)
        try:
            lease.bind(record.id)  # from now on its end gives the share back, whoever sees it
        except ServiceError:
            log.exception("sandbox %s: binding its quota lease failed", record.id)
        return record

    def _start(self, tenant: TenantRecord, request: SandboxRequest, cpu: float,
               memory: int) -> tuple[SandboxRecord, str]:  # fmt: skip
        """Have a worker start it and record it: the record and the create's source (warm
        when the worker claimed a warm sandbox, from its record's times)."""
        outcome = self.dispatcher.create(request)
        info = SandboxInfo.from_record(dict(outcome["record"]))
        record = sandbox_record(tenant.id, info, request, cpu, memory)
        record.limits["worker"] = str(outcome.get("worker") or "")
        try:
            self.store.sandboxes.add(record)
        except BaseException:
            self._end_quietly(info.id)
            raise
        return record, create_source(info)

    def pause(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """Freeze it on its worker (409 unless running)."""
        return self._change(tenant, sandbox_id, "POST", "/pause")

    def resume(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """Thaw it on its worker (409 unless paused)."""
        return self._change(tenant, sandbox_id, "POST", "/resume")

    def set_ttl(self, tenant: TenantRecord, sandbox_id: str, seconds: float) -> SandboxRecord:
        """End it ``seconds`` from now."""
        return self._change(tenant, sandbox_id, "PUT", "/ttl", {"ttl": seconds})

    def set_network(self, tenant: TenantRecord, sandbox_id: str, network: str | None,
                    allow: tuple[str, ...] | None) -> SandboxRecord:  # fmt: skip
        """Change its network policy on its worker (400 naming what it cannot enforce)."""
        body = {"network": network, "allow": None if allow is None else list(allow)}
        return self._change(tenant, sandbox_id, "PUT", "/network", body)

    def terminate(self, tenant: TenantRecord, sandbox_id: str) -> SandboxRecord:
        """End it (idempotent: an ended one is answered as it is)."""
        record = self.owned(tenant, sandbox_id)
        if record.state in _ENDED:
            return record
        info: SandboxInfo | None
        try:
            info = self._control("DELETE", sandbox_id)
        except (NotFound, WorkerLost):
            info = None
        self._end_record(sandbox_id, _reason(info), info.ended_at if info else None)
        return self.owned(tenant, sandbox_id)

    # ---- its worker ----------------------------------------------------------------------

    def _change(self, tenant: TenantRecord, sandbox_id: str, method: str, suffix: str,
                body: dict[str, Any] | None = None) -> SandboxRecord:  # fmt: skip
        record = self.owned(tenant, sandbox_id)
        if record.state in _ENDED:
            raise Conflict(f"sandbox {sandbox_id} has ended ({record.reason})",
                           hint="create a new sandbox")  # fmt: skip
        info = self._control(method, sandbox_id, suffix, body)
        self.store.sandboxes.set_state(
            info.id, info.state.value, reason=info.reason.value if info.reason else None,
            ready_at=info.ready_at, expires_at=info.deadline,
        )  # fmt: skip
        return self.owned(tenant, sandbox_id)

    def _control(self, method: str, sandbox_id: str, suffix: str = "",
                 body: dict[str, Any] | None = None) -> SandboxInfo:  # fmt: skip
        address = self.address_of(sandbox_id)
        url = f"{address.rstrip('/')}{API_PREFIX}/sandboxes/{sandbox_id}{suffix}"
        try:
            answer = self.client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise WorkerLost(f"the worker at {address} does not answer: {exc}",
                             hint="retry; if it persists the worker is gone") from exc  # fmt: skip
        if answer.status_code >= 400:
            raise worker_error(answer)
        return SandboxInfo.from_record(dict(answer.json()))

    def _end_quietly(self, sandbox_id: str) -> None:
        try:
            self._control("DELETE", sandbox_id)
        except ServiceError:
            log.exception("sandbox %s: terminating failed", sandbox_id)

    # ---- keeping the records in step ------------------------------------------------------

    def _sync(self, sandbox_id: str) -> None:
        """Finish the sandbox if the dispatch says it ended (its worker reported it, or the
        worker was lost)."""
        if not self._holds(sandbox_id):
            return
        known = self.dispatcher.broker.sandbox(sandbox_id)
        if known and known.get("state") not in _ENDED:
            return
        self._end_record(sandbox_id, known.get("reason") if known else None, None)

    # ---- start and stop -----------------------------------------------------------------

    def adopt(self) -> tuple[int, int]:
        """Count the recorded sandboxes still running on workers again; end the others'
        records. How many of each."""
        kept = ended = 0
        for record in self.store.sandboxes.unfinished():
            known = self.dispatcher.broker.sandbox(record.id)
            if known and known.get("state") not in _ENDED:
                lease = self.ledger.restore(record.tenant_id, record.cpu, record.memory,
                                            record.id)  # fmt: skip
                self._hold(record.id, lease, record.tenant_id, record.pool)
                kept += 1
                continue
            reason = (known.get("reason") if known else None) or EndReason.ERROR.value
            self.store.sandboxes.set_state(record.id, SandboxState.TERMINATED.value,
                                           reason=reason, ended_at=time.time())  # fmt: skip
            ended += 1
        return kept, ended

    def close(self, terminate: bool = True) -> None:
        """Stop the watcher; the sandboxes stay with their workers (see the module docstring:
        ``terminate`` is not this gateway's to do)."""
        self._stop_watching()
        self.client.close()


def _reason(info: SandboxInfo | None) -> str | None:
    return info.reason.value if info and info.reason else None
