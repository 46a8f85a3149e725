"""A throw-away PostgreSQL cluster (Debian's postgresql-15) on a unix socket of its own, no
TCP port; ``stop`` and ``start`` keep its data (for the database-unavailable fault)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HAVE_POSTGRES = (PG_BIN / "initdb").exists()
WHY_NO_POSTGRES = "Debian postgresql-15 absent (./setup.sh installs it)"


def _as_postgres(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                   capture_output=True, timeout=120)  # fmt: skip


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temp dir owned by postgres; ``url`` for SQLAlchemy."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="sandpool-pg-"))
        shutil.chown(self.base, "postgres")
        self.data = self.base / "data"
        self.port = 56000 + os.getpid() % 400  # only names the socket file
        self.url = f"postgresql+psycopg://postgres@/postgres?host={self.base}&port={self.port}"
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
                     "-w", "-o", f"-k {self.base} -p {self.port} -c listen_addresses=''",
                     "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
