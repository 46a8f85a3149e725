"""Sandbox records: the durable half of a long-lived sandbox (its id, tenant, pool, state,
labels, limits and times). Every read takes the tenant: another tenant's record is absent."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import Engine, insert, select, update

from sandpool.store.records import SandboxRecord
from sandpool.store.tables import sandboxes

__all__ = ["SandboxStore"]


def _record(row: Any) -> SandboxRecord:
    return SandboxRecord(**row._mapping)


class SandboxStore:
    """The sandboxes table; thread-safe (each call is one transaction of its own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, record: SandboxRecord) -> None:
        """Store a new sandbox's record."""
        with self._engine.begin() as conn:
            conn.execute(insert(sandboxes).values(**record.__dict__))

    def get(self, tenant_id: str, sandbox_id: str) -> SandboxRecord | None:
        """The tenant's sandbox with this id; None for an unknown id or another tenant's."""
        query = select(sandboxes).where(sandboxes.c.id == sandbox_id,
                                        sandboxes.c.tenant_id == tenant_id)  # fmt: skip
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def list(self, tenant_id: str, *, states: tuple[str, ...] = (),
             labels: dict[str, str] | None = None) -> list[SandboxRecord]:  # fmt: skip
        """The tenant's sandboxes, newest first, in ``states`` (all if empty) carrying every
        label of ``labels``."""
        query = select(sandboxes).where(sandboxes.c.tenant_id == tenant_id)
        if states:
            query = query.where(sandboxes.c.state.in_(states))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(sandboxes.c.created_at.desc())).all()
        found = [_record(row) for row in rows]
        wanted = (labels or {}).items()
        return [r for r in found if all(r.labels.get(k) == v for k, v in wanted)]

    def unfinished(self) -> builtins.list[SandboxRecord]:
        """Every tenant's sandboxes not yet terminated (what a starting server reconciles
        with the sandboxes it re-adopts)."""
        query = select(sandboxes).where(sandboxes.c.state != "terminated")
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def set_state(self, sandbox_id: str, state: str, *, reason: str | None = None,
                  **times: float | None) -> None:  # fmt: skip
        """Move a sandbox to ``state`` (with ``ready_at``/``ended_at``/``expires_at``)."""
        allowed = {"ready_at", "ended_at", "expires_at"}
        values: dict[str, Any] = {k: v for k, v in times.items() if k in allowed}
        with self._engine.begin() as conn:
            conn.execute(update(sandboxes).where(sandboxes.c.id == sandbox_id)
                         .values(state=state, reason=reason, **values))  # fmt: skip
