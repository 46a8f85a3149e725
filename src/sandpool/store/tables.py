"""The tables of the service's durable state, as SQLAlchemy Core objects (no ORM).

Times are Unix seconds (floats) so that SQLite and PostgreSQL store and compare them alike.
Every change to these tables needs a migration in ``migrations/versions`` (a test compares
the migrated schema with this module).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["api_keys", "metadata", "sandboxes", "tenants"]

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    # The tenant's own quota; NULL: the configuration's gateway.tenantQuota value.
    Column("max_concurrent", Integer, nullable=True),
    Column("max_cpu", Float, nullable=True),
    Column("max_memory", BigInteger, nullable=True),
    Column("creates_per_second", Float, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # the key's public prefix, for lookup
    # NULL for an admin key (it belongs to no tenant).
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
    Column("role", String(16), nullable=False),  # "admin" or "tenant"
    Column("secret_sha256", String(64), nullable=False),  # hex digest; the key is never stored
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Index("ix_api_keys_tenant_id", "tenant_id"),
)

sandboxes = Table(
    "sandboxes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("pool", String(63), nullable=False),
    Column("image", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),  # why it is in this state (an end, a failure)
    Column("labels", JSON, nullable=False, default=dict),
    Column("limits", JSON, nullable=False, default=dict),  # cpu, memory, pids, disk, ...
    Column("cpu", Float, nullable=False, default=0.0),  # what it counts against the quota
    Column("memory", BigInteger, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("ready_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),  # TTL: when it is ended unless renewed
    Index("ix_sandboxes_tenant_state", "tenant_id", "state"),
)
