"""API keys as stored: the public id and the SHA-256 of the secret; add, find, list, revoke."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, insert, select, update

from sandpool.errors import NotFound
from sandpool.store.records import ApiKeyRecord
from sandpool.store.tables import api_keys

__all__ = ["KeyStore"]

ADMIN, TENANT = "admin", "tenant"


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(**row._mapping)


class KeyStore:
    """The api_keys table; thread-safe (each call is one transaction of its own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, record: ApiKeyRecord) -> None:
        """Store a new key's record."""
        with self._engine.begin() as conn:
            conn.execute(insert(api_keys).values(**record.__dict__))

    def find(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id, revoked or not, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _record(row)

    def list(self, tenant_id: str | None) -> list[ApiKeyRecord]:
        """The keys of one tenant (``None``: the admin keys), oldest first."""
        where = (api_keys.c.tenant_id.is_(None) if tenant_id is None
                 else api_keys.c.tenant_id == tenant_id)  # fmt: skip
        with self._engine.connect() as conn:
            rows = conn.execute(select(api_keys).where(where).order_by(api_keys.c.created_at))
            return [_record(row) for row in rows]

    def has_admin(self) -> bool:
        """Whether an admin key was ever created (revoked ones count: never print a new one)."""
        with self._engine.connect() as conn:
            row = conn.execute(select(api_keys.c.id).where(api_keys.c.role == ADMIN)).first()
        return row is not None

    def revoke(self, key_id: str, tenant_id: str | None = None) -> ApiKeyRecord:
        """Revoke a key (of ``tenant_id`` when given); NotFound if there is no such key."""
        found = self.find(key_id)
        if found is None or (tenant_id is not None and found.tenant_id != tenant_id):
            raise NotFound(f"no API key '{key_id}'", hint="`sandpool keys ls` lists them")
        if found.revoked_at is None:
            with self._engine.begin() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                             .values(revoked_at=time.time()))  # fmt: skip
        return self.find(key_id) or found
