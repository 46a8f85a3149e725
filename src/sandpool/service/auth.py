"""Who is calling: ``Authorization: Bearer <key>`` checked against the store (or the
``SANDPOOL_ADMIN_KEY`` the server was given), and the admin key made at first start."""

from __future__ import annotations

import time

from sandpool.errors import PermissionDenied, Unauthenticated
from sandpool.service.apikeys import Principal, hash_secret, new_key, secret_matches, split_key
from sandpool.service.auth_cache import PrincipalCache
from sandpool.store import ADMIN, ApiKeyRecord, Store, TenantRecord

__all__ = ["ADMIN_KEY_ENV", "Authenticator", "require_admin", "require_tenant"]

ADMIN_KEY_ENV = "SANDPOOL_ADMIN_KEY"
_ENV_KEY_ID = "env"
_HINT = "send `Authorization: Bearer <key>`; `sandpool keys create` makes one"


class Authenticator:
    """Turns a request's Authorization header into a Principal; thread-safe. Keys verified
    against the store are remembered for ``cache.ttl`` seconds (``auth_cache``)."""

    def __init__(self, store: Store, admin_key: str | None = None,
                 cache: PrincipalCache | None = None) -> None:  # fmt: skip
        self.store = store
        self._env_admin_sha256 = hash_secret(admin_key) if admin_key else None
        self.cache = cache or PrincipalCache()

    def ensure_admin_key(self) -> str | None:
        """At the first start with no ``SANDPOOL_ADMIN_KEY``: make an admin key and return its
        text (to print once); None when one exists or the environment gives it."""
        if self._env_admin_sha256 is not None or self.store.keys.has_admin():
            return None
        key = new_key()
        self.store.keys.add(ApiKeyRecord(key.id, None, ADMIN, key.secret_sha256,
                                         "first-start admin key", time.time()))  # fmt: skip
        return key.text

    def cached(self, authorization: str | None) -> Principal | None:
        """The caller when it is known without the store (the server's admin key, or a key
        verified less than ``cache.ttl`` ago); None: ask ``principal``. Never blocks."""
        token = _token(authorization)
        if token is None:
            return None
        if self._env_admin_sha256 and secret_matches(token, self._env_admin_sha256):
            return Principal(_ENV_KEY_ID, None)
        return self.cache.get(token)

    def principal(self, authorization: str | None) -> Principal:
        """The caller, or Unauthenticated (missing, malformed, unknown, revoked, expired)."""
        if not authorization:
            raise Unauthenticated("no API key", hint=_HINT)
        token = _token(authorization)
        if token is None:
            raise Unauthenticated("the Authorization header is not `Bearer <key>`", hint=_HINT)
        if self._env_admin_sha256 and secret_matches(token, self._env_admin_sha256):
            return Principal(_ENV_KEY_ID, None)
        return self._stored(token)

    def forget(self, key_id: str | None = None) -> None:
        """Drop key ``key_id`` (or every key) from the cache: revoked or deleted here."""
        self.cache.forget(key_id)

    def _stored(self, token: str) -> Principal:
        parts = split_key(token)
        record = self.store.keys.find(parts[0]) if parts else None
        if parts is None or record is None or not secret_matches(parts[1], record.secret_sha256):
            raise Unauthenticated("unknown API key", hint=_HINT)
        if not record.usable(time.time()):
            raise Unauthenticated(f"API key '{record.id}' is revoked or expired",
                                  hint="ask an admin for a new one")  # fmt: skip
        tenant = None
        if record.tenant_id is not None:
            tenant = self.store.tenants.by_id(record.tenant_id)
            if tenant is None:  # deleted meanwhile (its keys go with it)
                raise Unauthenticated("unknown API key", hint=_HINT)
        principal = Principal(record.id, tenant)
        self.cache.put(token, principal, record.expires_at)
        return principal


def _token(authorization: str | None) -> str | None:
    """The key of a well-formed ``Bearer <key>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


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
