"""A throw-away ``redis-server`` on a unix socket of its own (never the host's 6379)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import redis

HAVE_REDIS = shutil.which("redis-server") is not None
WHY_NO_REDIS = "redis-server not installed (./setup.sh installs it)"


class RedisServer:
    """``redis-server`` in ``base`` (socket ``base/redis.sock``, no TCP); ``appendonly``
    keeps its data across ``restart``."""

    def __init__(self, base: Path, *, appendonly: bool = False) -> None:
        self.base, self.appendonly = base, appendonly
        self.socket = base / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = ["redis-server", "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(self.base), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--logfile", str(self.base / "redis.log")]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(unix_socket_path=str(self.socket)).ping():
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start: {self.log()}")

    def log(self) -> str:
        path = self.base / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
