"""``/v1/tenants`` (admin): create, list, get, delete; and ``/v1/me`` for any key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandpool.errors import Conflict
from sandpool.service.apikeys import Principal
from sandpool.service.auth import require_admin
from sandpool.service.context import ServiceContext, authenticate, context_of
from sandpool.service.schemas import ErrorOut, MeOut, QuotaOut, TenantIn, TenantOut, UsageOut, iso
from sandpool.sizes import parse_size
from sandpool.store import TenantRecord

__all__ = ["router", "tenant_out"]

router = APIRouter(prefix="/v1", tags=["tenants"])
Caller = Annotated[Principal, Depends(authenticate)]
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404, 409)}


def _quota(context: ServiceContext, tenant: TenantRecord) -> QuotaOut:
    quota = context.quota_of(tenant)
    return QuotaOut(concurrent=quota.concurrent, cpu=quota.cpu, memory=quota.memory,
                    creates_per_second=quota.creates_per_second)  # fmt: skip


def tenant_out(context: ServiceContext, tenant: TenantRecord) -> TenantOut:
    """The API's view of one tenant, with its effective quota."""
    return TenantOut(id=tenant.id, name=tenant.name, created_at=iso(tenant.created_at) or "",
                     quota=_quota(context, tenant))  # fmt: skip


@router.post("/tenants", status_code=201, responses=_ERRORS)  # type: ignore[arg-type]
def create_tenant(body: TenantIn, request: Request, caller: Caller) -> TenantOut:
    """A new tenant (admin)."""
    require_admin(caller)
    context, quota = context_of(request), body.quota
    memory = parse_size(quota.memory) if quota.memory is not None else None
    tenant = context.store.tenants.create(
        body.name,
        max_concurrent=quota.concurrent,
        max_cpu=quota.cpu,
        max_memory=memory,
        creates_per_second=quota.creates_per_second,
    )
    return tenant_out(context, tenant)


@router.get("/tenants", responses=_ERRORS)  # type: ignore[arg-type]
def list_tenants(request: Request, caller: Caller) -> list[TenantOut]:
    """Every tenant, by name (admin)."""
    require_admin(caller)
    context = context_of(request)
    return [tenant_out(context, t) for t in context.store.tenants.list()]


@router.get("/tenants/{name}", responses=_ERRORS)  # type: ignore[arg-type]
def get_tenant(name: str, request: Request, caller: Caller) -> TenantOut:
    """One tenant (admin)."""
    require_admin(caller)
    context = context_of(request)
    return tenant_out(context, context.store.tenants.by_name(name))


@router.delete("/tenants/{name}", responses=_ERRORS)  # type: ignore[arg-type]
def delete_tenant(name: str, request: Request, caller: Caller) -> TenantOut:
    """Delete a tenant and its keys (admin); 409 while it has runs or sandboxes going on."""
    require_admin(caller)
    context = context_of(request)
    tenant = context.store.tenants.by_name(name)
    if context.ledger.usage(tenant.id).count:
        raise Conflict(f"tenant '{name}' has runs or sandboxes going on",
                       hint="delete it once they have ended")  # fmt: skip
    deleted = context.store.tenants.delete(name)
    context.auth.forget()  # its keys went with it: none is answered from the cache
    return tenant_out(context, deleted)


@router.get("/me", responses=_ERRORS)  # type: ignore[arg-type]
def me(request: Request, caller: Caller) -> MeOut:
    """Who the key belongs to, the tenant's quota and what it holds now."""
    context = context_of(request)
    if caller.tenant is None:
        return MeOut(key_id=caller.key_id, admin=True, tenant=None, quota=None, usage=None)
    usage = context.ledger.usage(caller.tenant.id)
    return MeOut(key_id=caller.key_id, admin=False, tenant=caller.tenant.name,
                 quota=_quota(context, caller.tenant),
                 usage=UsageOut(concurrent=usage.count, cpu=usage.cpu,
                                memory=usage.memory))  # fmt: skip
