"""Sandbox records for the operators' views: every tenant's (admin) or one tenant's, filtered
by pool, state and label, newest first, one page at a time, with the total count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, or_, select

from sandpool.store.records import SandboxRecord
from sandpool.store.tables import sandboxes

__all__ = ["SandboxFilter", "SandboxListing", "SandboxPage", "tenants_of"]


@dataclass(frozen=True)
class SandboxFilter:
    """Which records to list; None (or empty) matches all. ``tenant_id`` None: every tenant
    (only the admin's views may ask for that)."""

    tenant_id: str | None = None
    pool: str | None = None
    state: str | None = None
    label: tuple[str, str] | None = None  # (key, value)


@dataclass(frozen=True)
class SandboxPage:
    """One page of records and how many match in all."""

    records: list[SandboxRecord]
    total: int
    offset: int
    limit: int


class SandboxListing:
    """Paged, filtered reads of the sandboxes table; thread-safe (one transaction a call)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def page(self, wanted: SandboxFilter, offset: int = 0, limit: int = 50) -> SandboxPage:
        """Records ``offset``..``offset+limit`` of those matching ``wanted``, newest first."""
        where = _conditions(wanted)
        rows_query = (select(sandboxes).where(*where)
                      .order_by(sandboxes.c.created_at.desc(), sandboxes.c.id)
                      .offset(offset).limit(limit))  # fmt: skip
        count_query = select(func.count()).select_from(sandboxes).where(*where)
        with self._engine.connect() as conn:
            total = int(conn.execute(count_query).scalar_one())
            rows = conn.execute(rows_query).all()
        records = [SandboxRecord(**row._mapping) for row in rows]
        return SandboxPage(records, total, offset, limit)

    def get(self, sandbox_id: str, tenant_id: str | None) -> SandboxRecord | None:
        """One record; with ``tenant_id``, None unless it is that tenant's."""
        where = _conditions(SandboxFilter(tenant_id=tenant_id))
        query = select(sandboxes).where(sandboxes.c.id == sandbox_id, *where)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else SandboxRecord(**row._mapping)

    def ended_with(self, reasons: tuple[str, ...], tenant_id: str | None,
                   limit: int = 200) -> list[SandboxRecord]:  # fmt: skip
        """The newest records that ended (or failed) for one of ``reasons`` (a reason may
        carry a message after a colon: ``error: ...``)."""
        matches = or_(*(sandboxes.c.reason == r for r in reasons),
                      *(sandboxes.c.reason.like(f"{r}:%") for r in reasons))  # fmt: skip
        where = [*_conditions(SandboxFilter(tenant_id=tenant_id)), matches]
        query = (select(sandboxes).where(*where)
                 .order_by(sandboxes.c.created_at.desc()).limit(limit))  # fmt: skip
        with self._engine.connect() as conn:
            return [SandboxRecord(**row._mapping) for row in conn.execute(query).all()]


def _conditions(wanted: SandboxFilter) -> list[Any]:
    where: list[Any] = []
    if wanted.tenant_id is not None:
        where.append(sandboxes.c.tenant_id == wanted.tenant_id)
    if wanted.pool:
        where.append(sandboxes.c.pool == wanted.pool)
    if wanted.state:
        where.append(sandboxes.c.state == wanted.state)
    if wanted.label is not None:
        key, value = wanted.label
        where.append(sandboxes.c.labels[key].as_string() == value)
    return where


def tenants_of(engine: Engine, sandbox_ids: list[str]) -> dict[str, str]:
    """Sandbox id -> tenant id, for the ids that have a record."""
    if not sandbox_ids:
        return {}
    query = select(sandboxes.c.id, sandboxes.c.tenant_id).where(sandboxes.c.id.in_(sandbox_ids))
    with engine.connect() as conn:
        return {row.id: row.tenant_id for row in conn.execute(query).all()}
