"""``/v1/keys`` (admin): create (the key is in this answer only), list, revoke."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandpool.service.apikeys import Principal, new_key
from sandpool.service.auth import require_admin
from sandpool.service.context import ServiceContext, authenticate, context_of
from sandpool.service.schemas import CreatedKeyOut, ErrorOut, KeyIn, KeyOut, iso
from sandpool.store import TENANT, ApiKeyRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])
Caller = Annotated[Principal, Depends(authenticate)]
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404)}


def _out(context: ServiceContext, record: ApiKeyRecord) -> KeyOut:
    tenant = context.store.tenants.by_id(record.tenant_id) if record.tenant_id else None
    return KeyOut(id=record.id, tenant=tenant.name if tenant else None, role=record.role,
                  name=record.name, created_at=iso(record.created_at) or "",
                  expires_at=iso(record.expires_at),
                  revoked_at=iso(record.revoked_at))  # fmt: skip


@router.post("", status_code=201, responses=_ERRORS)  # type: ignore[arg-type]
def create_key(body: KeyIn, request: Request, caller: Caller) -> CreatedKeyOut:
    """A new key of a tenant (admin); ``key`` is shown in this answer only."""
    require_admin(caller)
    context = context_of(request)
    tenant = context.store.tenants.by_name(body.tenant)
    key, now = new_key(), time.time()
    expires = now + body.expires_in if body.expires_in is not None else None
    record = ApiKeyRecord(key.id, tenant.id, TENANT, key.secret_sha256, body.name, now, expires)
    context.store.keys.add(record)
    return CreatedKeyOut(**_out(context, record).model_dump(), key=key.text)


@router.get("", responses=_ERRORS)  # type: ignore[arg-type]
def list_keys(request: Request, caller: Caller, tenant: str | None = None) -> list[KeyOut]:
    """The keys of one tenant, or (without ``tenant``) the admin keys and every tenant's."""
    require_admin(caller)
    context = context_of(request)
    if tenant is not None:
        owners: list[str | None] = [context.store.tenants.by_name(tenant).id]
    else:
        owners = [None, *(t.id for t in context.store.tenants.list())]
    return [_out(context, r) for owner in owners for r in context.store.keys.list(owner)]


@router.delete("/{key_id}", responses=_ERRORS)  # type: ignore[arg-type]
def revoke_key(key_id: str, request: Request, caller: Caller) -> KeyOut:
    """Revoke a key (admin): it is refused from the next request on."""
    require_admin(caller)
    context = context_of(request)
    revoked = context.store.keys.revoke(key_id)
    context.auth.forget(key_id)  # this server's cache: refused from the next request on
    return _out(context, revoked)
