"""The store: the migrations build exactly the schema of ``tables``; SQLite file 0600; keys
revoked stay revoked; sandbox records are read per tenant."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sandpool.errors import Conflict, NotFound
from sandpool.store import ADMIN, ApiKeyRecord, SandboxRecord, Store, default_url
from sandpool.store.tables import metadata


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(default_url(tmp_path))


def test_the_migrations_build_the_schema_of_the_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"tables.py and the migrations differ: {diff}"


def test_sqlite_runs_in_wal_without_an_fsync_per_commit(store: Store) -> None:
    """WAL with synchronous=NORMAL: a commit is not fsynced (about 5 ms each on this disk,
    paid by every create and terminate), and the file stays consistent on a crash."""
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_database_file_is_private_and_survives_a_reopen(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    db = tmp_path / "service" / "service.db"
    store = Store.open(url)
    store.tenants.create("acme")
    store.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert Store.open(default_url(tmp_path)).tenants.by_name("acme").name == "acme"


def test_tenants(store: Store) -> None:
    acme = store.tenants.create("acme", max_concurrent=3)
    with pytest.raises(Conflict):
        store.tenants.create("acme")
    assert store.tenants.by_id(acme.id) == acme
    store.keys.add(ApiKeyRecord("k1", acme.id, "tenant", "0" * 64, "", time.time()))
    store.tenants.delete("acme")
    assert store.keys.find("k1") is None  # its keys went with it
    with pytest.raises(NotFound):
        store.tenants.delete("acme")


def test_keys(store: Store) -> None:
    assert not store.keys.has_admin()
    store.keys.add(ApiKeyRecord("a1", None, ADMIN, "0" * 64, "", time.time()))
    assert store.keys.has_admin()
    revoked = store.keys.revoke("a1")
    assert revoked.revoked_at is not None and not revoked.usable(time.time())
    assert store.keys.revoke("a1").revoked_at == revoked.revoked_at
    with pytest.raises(NotFound):
        store.keys.revoke("nope")


def test_sandbox_records_are_per_tenant(store: Store) -> None:
    a, b = store.tenants.create("a"), store.tenants.create("b")
    store.sandboxes.add(SandboxRecord("sb1", a.id, "default", "running", time.time(),
                                      labels={"job": "7"}))  # fmt: skip
    assert store.sandboxes.get(a.id, "sb1") is not None
    assert store.sandboxes.get(b.id, "sb1") is None
    assert [r.id for r in store.sandboxes.list(a.id, labels={"job": "7"})] == ["sb1"]
    assert store.sandboxes.list(a.id, labels={"job": "8"}) == []
    assert store.sandboxes.list(b.id) == []
    store.sandboxes.set_state("sb1", "ended", reason="terminated", ended_at=1.0)
    ended = store.sandboxes.get(a.id, "sb1")
    assert ended is not None and (ended.state, ended.ended_at) == ("ended", 1.0)
