"""The controls of the escape suite: what ordinary programs do still works under the runc
allowlist (and under gVisor), so the profile is not refusing everything."""

from __future__ import annotations

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
WORKLOAD = """
import asyncio, hashlib, multiprocessing, os, socket, sqlite3, ssl, subprocess, tempfile, threading
out = []
t = threading.Thread(target=out.append, args=("thread",)); t.start(); t.join()
with multiprocessing.Pool(2) as pool: out.append(sum(pool.map(abs, [-1, -2])))
out.append(subprocess.run(["sh", "-c", "echo sh"], capture_output=True, text=True).stdout.strip())
out.append(sqlite3.connect(":memory:").execute("select 41 + 1").fetchone()[0])
out.append(ssl.create_default_context().verify_mode.name)
out.append(asyncio.run(asyncio.sleep(0, result="asyncio")))
a, b = socket.socketpair(); a.send(b"pair"); out.append(b.recv(4).decode())
with tempfile.NamedTemporaryFile() as f: os.fsync(f.fileno()); out.append("fsync")
out.append(hashlib.sha256(b"").hexdigest()[:8])
print(out)
"""
EXPECTED = "['thread', 3, 'sh', 42, 'CERT_REQUIRED', 'asyncio', 'pair', 'fsync', 'e3b0c442']\n"


@pytest.mark.parametrize("pool", ["performance", "default"])
def test_python_threads_processes_ssl_sqlite_asyncio_work(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    result = sp.run(pool, ["python3", "-c", WORKLOAD], image="builtin:default", timeout=120)
    assert (result.exit_code, result.stderr) == (0, b"")
    assert result.stdout == EXPECTED.encode()
