"""``POST /v1/runs``: one command in a new container, to its end (``sandpool run``'s contract:
exit code, OOM, timeout, captured and capped output)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandpool.errors import QuotaExceeded, UnknownPool
from sandpool.service.apikeys import Principal
from sandpool.service.auth import require_tenant
from sandpool.service.context import ServiceContext, authenticate, context_of
from sandpool.service.problems import as_service_error
from sandpool.service.quotas import QuotaLease
from sandpool.service.runs import run_cost
from sandpool.service.schemas import ErrorOut, RunIn, RunOut
from sandpool.store import TenantRecord
from sandpool.worker.request import RunRequest, RunResult

__all__ = ["router"]

router = APIRouter(prefix="/v1/runs", tags=["runs"])
Caller = Annotated[Principal, Depends(authenticate)]
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 413, 429, 503)}


def _request(body: RunIn) -> RunRequest:
    limits = body.limits
    env = tuple(f"{k}={v}" for k, v in body.env.items())
    return RunRequest(command=tuple(body.command), image=body.image, cpu=limits.cpu,
                      memory=limits.memory, pids=limits.pids, timeout=body.timeout, env=env,
                      workdir=body.workdir, disk=limits.disk,
                      max_output=limits.max_output, network=body.network,
                      allow=None if body.allow is None else tuple(body.allow))  # fmt: skip


def _text(data: bytes | None, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(data or b"").decode()
    return (data or b"").decode("utf-8", errors="replace")


def _out(result: RunResult, encoding: str) -> RunOut:
    fields = {
        **result.to_json(),
        "stdout": _text(result.stdout, encoding),
        "stderr": _text(result.stderr, encoding),
        "outputEncoding": encoding,
    }
    return RunOut.model_validate(fields, strict=False)


def _admit(context: ServiceContext, tenant: TenantRecord, body: RunIn,
           request: RunRequest) -> QuotaLease:  # fmt: skip
    """Count the run against the tenant's quota (atomically), or raise."""
    try:
        pool = context.config.pool(body.pool)
    except UnknownPool as exc:
        raise as_service_error(exc) from exc
    cpu, memory = run_cost(pool, request)
    try:
        return context.ledger.admit(tenant.id, context.quota_of(tenant), cpu, memory)
    except QuotaExceeded as exc:
        context.metrics.quota_refusals.labels(exc.reason or "other").inc()
        raise


@router.post("", responses=_ERRORS)  # type: ignore[arg-type]  # dict[int, ...] is accepted
async def create_run(body: RunIn, request: Request, caller: Caller) -> RunOut:
    """Run ``command`` in a new container of ``pool`` and answer when it has ended."""
    tenant = require_tenant(caller)
    context = context_of(request)
    run_request = _request(body)
    lease = _admit(context, tenant, body, run_request)
    stdin = body.stdin.encode() if body.stdin is not None else None
    result = await context.runs.run(body.pool, run_request, stdin, lease)
    return _out(result, body.output_encoding)
