"""A real ``sandpool server`` process per module: its own state dir, gVisor root and cgroup
parent, on a free loopback port; checked for leaks (containers, mounts, cgroups) after it
stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandpool.client import Client
from tests.integration.conftest import Sandbox, reachable_tmp_dir

SANDPOOL = str(Path(sys.executable).parent / "sandpool")
KEY_LINE = re.compile(r"admin key \(shown once, stored only hashed\): (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``sandpool server`` subprocess; ``stop`` sends SIGTERM and waits."""

    def __init__(self, box: Sandbox, env: dict[str, str] | None = None,
                 database: str | None = None, socket: Path | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.box, self.port = box, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the serve socket of this server alone: never the host's /run/sandpool/serve.sock
        self.socket = socket or box.base / f"serve-{self.port}.sock"
        self.log = box.base / f"server-{self.port}.log"
        self.out = box.base / f"server-{self.port}.out"
        argv = [
            SANDPOOL,
            "server",
            "--listen",
            f"127.0.0.1:{self.port}",
            "-c",
            str(box.config_file),
            "--socket",
            str(self.socket),
            *(["--database", database] if database else []),
            *extra_args,
        ]
        self.proc = subprocess.Popen(argv, stdout=self.out.open("wb"), stderr=self.log.open("wb"),
                                     env={**os.environ, **(env or {})})  # fmt: skip
        self._wait_ready()
        self.admin_key = self.printed_admin_key()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"server not ready in 60 s: {self.stderr()}")

    def printed_admin_key(self) -> str | None:
        """The key printed at first start on stdout, if one was printed."""
        match = KEY_LINE.search(self.out.read_text())
        return match[1] if match else None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, key: str | None) -> Client:
        return Client(self.url, key)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it to exit; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def service_box() -> Iterator[Sandbox]:
    """A sandpool installation of the module's own, with a short shutdown timeout and a
    small default tenant quota; no leaks at the end."""
    with reachable_tmp_dir() as base:
        box = Sandbox(base)
        box.cgroup_parent = f"sandpool-svc-{os.getpid()}"
        box.write_config("gateway:\n  shutdownTimeout: 2\n"
                         "  tenantQuota: {concurrent: 4, createsPerSecond: 100}\n")  # fmt: skip
        yield box
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not left, f"the service leaked: {left}"


@pytest.fixture(scope="module")
def server(service_box: Sandbox) -> Iterator[ServerProcess]:
    """The module's server, with the admin key it printed at its first start."""
    process = ServerProcess(service_box)
    yield process
    assert process.stop() in (0, -signal.SIGTERM)
