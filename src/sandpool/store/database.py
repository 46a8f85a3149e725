"""The engine: SQLite under the state dir by default (0600, WAL), any SQLAlchemy URL else;
the schema is brought to the newest migration on open."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from sandpool.errors import ConfigError

__all__ = ["MIGRATIONS", "default_url", "open_engine", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def default_url(state_dir: str | Path) -> str:
    """The embedded default: ``<stateDir>/service/service.db``, created 0600 in a 0700 dir."""
    directory = Path(state_dir) / "service"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / "service.db"
    os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
    path.chmod(0o600)  # an older file keeps its mode otherwise; SQLite's -wal/-shm copy it
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE for a tenant's keys
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
    # WAL's NORMAL: a commit is not fsynced (5 ms each here), only checkpoints are; the file
    # stays consistent, and a process crash loses nothing. A power loss or host crash may
    # lose the last commits, as it loses the sandboxes they describe.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine for ``url``, migrated to the newest schema; ConfigError naming the URL's
    scheme if it cannot be used (the URL itself may hold a password: never printed)."""
    scheme = url.split(":", 1)[0]
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        upgrade(engine)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(f"gateway.database: cannot use the {scheme} database "
                          f"({type(exc).__name__})",
                          hint="check the URL, that the server runs and the driver is "
                               "installed") from exc  # fmt: skip
    return engine


def upgrade(engine: Engine) -> None:
    """Apply every migration the database has not had yet (Alembic, ``migrations/``)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.execute(text("SELECT 1"))
