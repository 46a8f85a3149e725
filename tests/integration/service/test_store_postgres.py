"""The store and the server on PostgreSQL (Debian's postgresql, a throw-away cluster on a
unix socket of its own, no TCP port): the same migrations, the same behaviour as SQLite."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sandpool.errors import Conflict
from sandpool.store import ApiKeyRecord, SandboxRecord, Store
from sandpool.store.tables import metadata
from tests.integration.conftest import Sandbox

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="Debian postgresql-15 absent"),
]
PORT = 55000 + os.getpid() % 400  # only names the socket file: no TCP listener


def _as_postgres(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                   capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh cluster for the module, stopped and removed afterwards."""
    pytest.importorskip("psycopg")
    base = Path(tempfile.mkdtemp(prefix="sandpool-pg-"))
    shutil.chown(base, "postgres")
    data = base / "data"
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                     "-o", f"-k {base} -p {PORT} -c listen_addresses=''", "start")  # fmt: skip
        yield f"postgresql+psycopg://postgres@/postgres?host={base}&port={PORT}"
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_the_migrations_build_the_schema_of_the_tables(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    try:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def test_tenants_keys_and_sandboxes(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    try:
        acme = store.tenants.create("pg-acme", max_memory=1 << 40)
        with pytest.raises(Conflict):
            store.tenants.create("pg-acme")
        store.keys.add(ApiKeyRecord("pgk1", acme.id, "tenant", "0" * 64, "", time.time()))
        store.sandboxes.add(SandboxRecord("pgsb", acme.id, "default", "running", time.time(),
                                          labels={"job": "7"}))  # fmt: skip
        assert [r.id for r in store.sandboxes.list(acme.id, labels={"job": "7"})] == ["pgsb"]
        assert store.tenants.by_name("pg-acme").max_memory == 1 << 40
        store.tenants.delete("pg-acme")
        assert store.keys.find("pgk1") is None and store.sandboxes.list(acme.id) == []
    finally:
        store.close()


@pytest.mark.runc
def test_the_server_runs_on_postgresql(postgres_url: str, service_box: Sandbox) -> None:
    from sandpool.client import Client
    from tests.integration.service.conftest import ServerProcess

    server = ServerProcess(service_box, env={"SANDPOOL_ADMIN_KEY": "pg-admin"},
                           database=postgres_url)  # fmt: skip
    try:
        with Client(server.url, "pg-admin") as admin:
            admin.create_tenant("pg-tenant")
            key = admin.create_key("pg-tenant").key
        with Client(server.url, key) as client:
            assert client.me().tenant == "pg-tenant"
            assert client.run(["true"], pool="performance").exit_code == 0
    finally:
        assert server.stop() in (0, -15)
