"""The durable data layer: tenants, API keys and sandbox records in one database, SQLite
under the state dir by default or any SQLAlchemy URL (PostgreSQL for the scale-out), its
schema versioned by Alembic migrations.

    store = Store.open(default_url(state_dir))
    tenant = store.tenants.create("acme")
    store.close()
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from sandpool.store.database import default_url, open_engine
from sandpool.store.keys import ADMIN, TENANT, KeyStore
from sandpool.store.records import ApiKeyRecord, SandboxRecord, TenantRecord
from sandpool.store.sandboxes import SandboxStore
from sandpool.store.tenants import TenantStore

__all__ = [
    "ADMIN",
    "TENANT",
    "ApiKeyRecord",
    "SandboxRecord",
    "Store",
    "TenantRecord",
    "default_url",
]


class Store:
    """One database and its tables; thread-safe (the engine pools connections)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tenants = TenantStore(engine)
        self.keys = KeyStore(engine)
        self.sandboxes = SandboxStore(engine)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` and migrate it to the newest schema."""
        return cls(open_engine(url))

    def ping(self) -> bool:
        """Whether the database answers now."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
