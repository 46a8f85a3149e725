"""``/v1/sandboxes``: create, get, list, pause, resume, set TTL, terminate (tenant keys).

Every handler is sync: FastAPI runs it in a worker thread, as the calls start and stop
containers and write the store. Another tenant's sandbox is 404, like an unknown id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from sandpool.errors import InvalidRequest, ServiceUnavailable, UnknownPool
from sandpool.sandbox import SandboxInfo, SandboxRequest, SandboxState
from sandpool.service.apikeys import Principal
from sandpool.service.auth import require_tenant
from sandpool.service.context import authenticate, context_of
from sandpool.service.problems import as_service_error
from sandpool.service.sandbox_backend import SandboxAccess, SandboxBackend
from sandpool.service.sandbox_schemas import (
    NetworkIn,
    SandboxIn,
    SandboxOut,
    SandboxUsageOut,
    TtlIn,
)
from sandpool.service.sandboxes import SandboxService
from sandpool.service.schemas import ErrorOut, iso
from sandpool.store import SandboxRecord, TenantRecord

__all__ = ["Access", "Owner", "access", "router", "sandbox_out", "sandboxes_of"]

router = APIRouter(prefix="/v1/sandboxes", tags=["sandboxes"])
Caller = Annotated[Principal, Depends(authenticate)]
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404, 409, 429, 503)}
_STATES = [s.value for s in SandboxState if s != SandboxState.WARM]


def sandboxes_of(request: Request) -> SandboxBackend:
    """The server's sandboxes (503 on a server that runs none)."""
    service = context_of(request).sandboxes
    if service is None:
        raise ServiceUnavailable("this server runs no sandboxes",
                                 hint="start it with `sandpool server`")  # fmt: skip
    return service


# The two dependencies below only look at memory: async, so no thread hop runs them.
async def _owner(request: Request, caller: Caller) -> tuple[SandboxBackend, TenantRecord]:
    return sandboxes_of(request), require_tenant(caller)


async def access(request: Request, caller: Caller) -> tuple[SandboxAccess, TenantRecord]:
    """The exec and file routes' view: the local service (a gateway forwards those routes to
    its workers before they get here; a worker overrides this dependency)."""
    service = sandboxes_of(request)
    if not isinstance(service, SandboxService):
        raise ServiceUnavailable("this server runs no sandboxes itself",
                                 hint="ask the gateway in front of it")  # fmt: skip
    return service, require_tenant(caller)


Owner = Annotated[tuple[SandboxBackend, TenantRecord], Depends(_owner)]
Access = Annotated[tuple[SandboxAccess, TenantRecord], Depends(access)]


def sandbox_out(service: SandboxBackend, record: SandboxRecord) -> SandboxOut:
    """The API's view of a sandbox: its record, with the live state while it runs."""
    info = service.live_info(record.id) if record.state != "terminated" else None
    limits = record.limits
    return SandboxOut(
        id=record.id, pool=record.pool, image=record.image, state=record.state,
        reason=record.reason, labels=dict(record.labels),
        container_runtime=limits.get("containerRuntime"),
        gvisor_platform=limits.get("gvisorPlatform"), cpu=record.cpu, memory=record.memory,
        ttl=info.ttl if info else limits.get("ttl"),
        idle_timeout=info.idle_timeout if info else limits.get("idleTimeout"),
        created_at=iso(record.created_at) or "", ready_at=iso(record.ready_at),
        expires_at=iso(info.deadline if info else record.expires_at),
        ended_at=iso(record.ended_at), last_activity=iso(info.last_activity if info else None),
        oom_kills=info.oom_kills if info else 0,
        network=info.network if info else None, allow=list(info.allow) if info else [],
        network_bytes_in=info.network_bytes_in if info else None,
        network_bytes_out=info.network_bytes_out if info else None,
        usage=_usage(service, info),
    )  # fmt: skip


def _usage(service: SandboxBackend, info: SandboxInfo | None) -> SandboxUsageOut | None:
    """The sandbox's usage while it lives (where it runs: here, or its worker)."""
    if info is None or info.state in (SandboxState.TERMINATED, SandboxState.TERMINATING):
        return None
    usage = service.usage(info.id)
    if usage is None:
        return None
    return SandboxUsageOut(cpu_seconds=usage.cpu_seconds, memory_bytes=usage.memory_now,
                           memory_peak_bytes=usage.memory_peak,
                           disk_used_bytes=usage.disk_used)  # fmt: skip


def _request(body: SandboxIn) -> SandboxRequest:
    limits = body.limits
    return SandboxRequest(pool=body.pool, image=body.image, cpu=limits.cpu,
                          memory=limits.memory, pids=limits.pids, disk=limits.disk,
                          env=tuple(f"{k}={v}" for k, v in body.env.items()),
                          workdir=body.workdir, ttl=body.ttl, idle_timeout=body.idle_timeout,
                          labels=tuple(body.labels.items()), network=body.network,
                          allow=None if body.allow is None else tuple(body.allow))  # fmt: skip


@router.post("", status_code=201, responses=_ERRORS)  # type: ignore[arg-type]
def create_sandbox(body: SandboxIn, owner: Owner) -> SandboxOut:
    """Start a sandbox of ``pool``, counted against the tenant's quota until it ends."""
    service, tenant = owner
    try:
        record = service.create(tenant, _request(body))
    except UnknownPool as exc:
        raise as_service_error(exc) from exc
    return sandbox_out(service, record)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"label: '{pair}' is not KEY=VALUE", field="label",
                                 hint="e.g. ?label=job=7 (repeat for more)")  # fmt: skip
        labels[key] = value
    return labels


@router.get("", responses=_ERRORS)  # type: ignore[arg-type]
def list_sandboxes(owner: Owner, state: str | None = None, pool: str | None = None,
                   label: Annotated[list[str], Query()] = []) -> list[SandboxOut]:  # noqa: B006  # fmt: skip
    """The tenant's sandboxes, newest first; ``label=KEY=VALUE`` (repeatable) keeps those
    carrying every such label."""
    service, tenant = owner
    if state is not None and state not in _STATES:
        raise InvalidRequest(f"state: '{state}' is not one of {', '.join(_STATES)}",
                             field="state")  # fmt: skip
    records = service.list(tenant, state=state, pool=pool, labels=_labels(label))
    return [sandbox_out(service, r) for r in records]


@router.get("/{sandbox_id}", responses=_ERRORS)  # type: ignore[arg-type]
def get_sandbox(sandbox_id: str, owner: Owner) -> SandboxOut:
    """One sandbox of the tenant (terminated ones too, with their reason)."""
    service, tenant = owner
    return sandbox_out(service, service.owned(tenant, sandbox_id))


@router.post("/{sandbox_id}/pause", responses=_ERRORS)  # type: ignore[arg-type]
def pause_sandbox(sandbox_id: str, owner: Owner) -> SandboxOut:
    """Freeze every process of the sandbox (409 unless running); its TTL keeps running."""
    service, tenant = owner
    return sandbox_out(service, service.pause(tenant, sandbox_id))


@router.post("/{sandbox_id}/resume", responses=_ERRORS)  # type: ignore[arg-type]
def resume_sandbox(sandbox_id: str, owner: Owner) -> SandboxOut:
    """Thaw a paused sandbox (409 unless paused)."""
    service, tenant = owner
    return sandbox_out(service, service.resume(tenant, sandbox_id))


@router.put("/{sandbox_id}/ttl", responses=_ERRORS)  # type: ignore[arg-type]
def set_ttl(sandbox_id: str, body: TtlIn, owner: Owner) -> SandboxOut:
    """End the sandbox ``ttl`` seconds from now (whatever its TTL was)."""
    service, tenant = owner
    return sandbox_out(service, service.set_ttl(tenant, sandbox_id, body.ttl))


@router.put("/{sandbox_id}/network", responses=_ERRORS)  # type: ignore[arg-type]
def set_network(sandbox_id: str, body: NetworkIn, owner: Owner) -> SandboxOut:
    """Change the running sandbox's network policy, at once (open connections included)."""
    service, tenant = owner
    allow = None if body.allow is None else tuple(body.allow)
    return sandbox_out(service, service.set_network(tenant, sandbox_id, body.network, allow))


@router.delete("/{sandbox_id}", responses=_ERRORS)  # type: ignore[arg-type]
def terminate_sandbox(sandbox_id: str, owner: Owner) -> SandboxOut:
    """Terminate the sandbox and give its quota share back (an ended one stays as it is)."""
    service, tenant = owner
    return sandbox_out(service, service.terminate(tenant, sandbox_id))
