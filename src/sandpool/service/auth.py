"""Who is calling: ``Authorization: Bearer <key>`` checked against the store (or the
``SANDPOOL_ADMIN_KEY`` the server was given), and the admin key made at first start."""

from __future__ import annotations

import time

from sandpool.errors import PermissionDenied, Unauthenticated
from sandpool.service.apikeys import Principal, hash_secret, new_key, secret_matches, split_key
from sandpool.store import ADMIN, ApiKeyRecord, Store, TenantRecord

__all__ = ["ADMIN_KEY_ENV", "Authenticator", "require_admin", "require_tenant"]

ADMIN_KEY_ENV = "SANDPOOL_ADMIN_KEY"
_ENV_KEY_ID = "env"
_HINT = "send `Authorization: Bearer <key>`; `sandpool keys create` makes one"


class Authenticator:
    """Turns a request's Authorization header into a Principal; thread-safe (reads only)."""

    def __init__(self, store: Store, admin_key: str | None = None) -> None:
        self.store = store
        self._env_admin_sha256 = hash_secret(admin_key) if admin_key else None

    def ensure_admin_key(self) -> str | None:
        """At the first start with no ``SANDPOOL_ADMIN_KEY``: make an admin key and return its
        text (to print once); None when one exists or the environment gives it."""
        if self._env_admin_sha256 is not None or self.store.keys.has_admin():
            return None
        key = new_key()
        self.store.keys.add(ApiKeyRecord(key.id, None, ADMIN, key.secret_sha256,
                                         "first-start admin key", time.time()))  # fmt: skip
        return key.text

    def principal(self, authorization: str | None) -> Principal:
        """The caller, or Unauthenticated (missing, malformed, unknown, revoked, expired)."""
        if not authorization:
            raise Unauthenticated("no API key", hint=_HINT)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header is not `Bearer <key>`", hint=_HINT)
        token = token.strip()
        if self._env_admin_sha256 and secret_matches(token, self._env_admin_sha256):
            return Principal(_ENV_KEY_ID, None)
        return self._stored(token)

    def _stored(self, token: str) -> Principal:
        parts = split_key(token)
        record = self.store.keys.find(parts[0]) if parts else None
        if parts is None or record is None or not secret_matches(parts[1], record.secret_sha256):
            raise Unauthenticated("unknown API key", hint=_HINT)
        if not record.usable(time.time()):
            raise Unauthenticated(f"API key '{record.id}' is revoked or expired",
                                  hint="ask an admin for a new one")  # fmt: skip
        if record.tenant_id is None:
            return Principal(record.id, None)
        tenant = self.store.tenants.by_id(record.tenant_id)
        if tenant is None:  # deleted meanwhile (its keys go with it)
            raise Unauthenticated("unknown API key", hint=_HINT)
        return Principal(record.id, tenant)


def require_admin(principal: Principal) -> Principal:
    """``principal`` if it is the admin, else PermissionDenied."""
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin key",
                               hint="SANDPOOL_API_KEY must be the server's admin key")  # fmt: skip
    return principal


def require_tenant(principal: Principal) -> TenantRecord:
    """The caller's tenant, or PermissionDenied for the admin (it runs nothing)."""
    if principal.tenant is None:
        raise PermissionDenied(
            "the admin key belongs to no tenant",
            hint="use a tenant's key (`sandpool keys create --tenant NAME`)",
        )
    return principal.tenant
    return principal
