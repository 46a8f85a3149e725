"""Tenants: create, find, list, delete (a tenant's keys and sandbox records go with it)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from sandpool.errors import Conflict, NotFound
from sandpool.store.records import TenantRecord
from sandpool.store.tables import tenants

__all__ = ["TenantStore"]


def _record(row: Any) -> TenantRecord:
    return TenantRecord(**row._mapping)


class TenantStore:
    """The tenants table; thread-safe (each call is one transaction of its own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, name: str, *, max_concurrent: int | None = None,
               max_cpu: float | None = None, max_memory: int | None = None,
               creates_per_second: float | None = None) -> TenantRecord:  # fmt: skip
        """A new tenant; Conflict if the name is taken."""
        record = TenantRecord(f"tn_{secrets.token_hex(8)}", name, time.time(), max_concurrent,
                              max_cpu, max_memory, creates_per_second)  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(tenants).values(**record.__dict__))
        except IntegrityError as exc:
            raise Conflict(
                f"a tenant named '{name}' exists",
                hint="`sandpool tenants ls` lists them",
                field="name",
            ) from exc
        return record

    def by_name(self, name: str) -> TenantRecord:
        """The tenant called ``name``, or NotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            raise NotFound(f"no tenant named '{name}'", hint="`sandpool tenants ls` lists them")
        return _record(row)

    def by_id(self, tenant_id: str) -> TenantRecord | None:
        """The tenant with this id, if it exists."""
        with self._engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        return None if row is None else _record(row)

    def list(self) -> list[TenantRecord]:
        """Every tenant, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.name)).all()
        return [_record(row) for row in rows]

    def delete(self, name: str) -> TenantRecord:
        """Remove the tenant called ``name`` with its keys; NotFound if there is none."""
        record = self.by_name(name)
        with self._engine.begin() as conn:
            conn.execute(delete(tenants).where(tenants.c.id == record.id))
        return record
