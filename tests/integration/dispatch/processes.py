"""Real processes for the dispatch tests: a gateway (``sandpool server --redis``) and workers
(``sandpool worker --gateway``), each with its own state dir, gVisor root and cgroup parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Sandbox
from tests.integration.service.conftest import free_port

SANDPOOL = str(Path(sys.executable).parent / "sandpool")
TOKEN = "test-worker-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def box_of(base: Path, name: str, extra_pools: str = "") -> Sandbox:
    """A Sandbox (paths, leak check) of its own under ``base/name``."""
    (base / name).mkdir(mode=0o711)
    box = Sandbox(base / name)
    box.cgroup_parent = f"sandpool-test-{os.getpid()}-{name}"
    box.write_config(extra_pools)
    return box


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in {limit} s: {log.read_text(errors='replace')}")


class Proc:
    """One sandpool subprocess with its log."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], ready: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **env})  # fmt: skip
        _wait(ready, self.proc, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Gateway(Proc):
    """``sandpool server --redis``; ``call`` speaks to its internal endpoints. It serves no
    unix socket (the default one is the machine's, and two gateways would collide there)."""

    def __init__(self, box: Sandbox, redis_url: str, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, port: int | None = None) -> None:  # fmt: skip
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [SANDPOOL, "server", "--listen", f"127.0.0.1:{self.port}", "--redis", redis_url,
                "-c", str(box.config_file), "--no-socket", *(extra_args or [])]  # fmt: skip
        env = {"SANDPOOL_WORKER_TOKEN": TOKEN, "SANDPOOL_ADMIN_KEY": "sp_admin_" + "x" * 32,
               "SANDPOOL_DISPATCH_LEASE": "2", **(env or {})}  # fmt: skip
        super().__init__(argv, box.base / "gateway.log", env, f"{self.url}/readyz")
        self.client = httpx.Client(base_url=f"{self.url}/internal/v1", headers=AUTH,
                                   timeout=120)  # fmt: skip

    def create(self, pool: str, **fields: Any) -> httpx.Response:
        return self.client.post("/sandboxes", json={"pool": pool, **fields})

    def exec(self, sandbox_id: str, *argv: str) -> tuple[int, str]:
        """Run through the gateway's proxy: (exit code, stdout)."""
        answer = self.client.post(f"/sandboxes/{sandbox_id}/exec", json={"argv": list(argv)})
        assert answer.status_code == 200, answer.text
        lines = [json.loads(line) for line in answer.text.splitlines()]
        import base64

        out = b"".join(base64.b64decode(x["data"]) for x in lines if x["type"] == "stdout")
        return lines[-1]["exitCode"], out.decode()


class Worker(Proc):
    """``sandpool worker --pool P --gateway URL`` on a loopback port of its own."""

    def __init__(self, box: Sandbox, pool: str, gateway: str, *, sandboxes: int = 8,
                 name: str = "worker", config: Path | None = None) -> None:  # fmt: skip
        self.box, self.port = box, free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        argv = [SANDPOOL, "worker", "--pool", pool, "--gateway", gateway, "-c",
                str(config or box.config_file), "--listen", f"127.0.0.1:{self.port}",
                "--sandboxes", str(sandboxes), "--cpu", "8", "--memory", "16Gi"]  # fmt: skip
        super().__init__(argv, box.base / f"{name}.log", {"SANDPOOL_WORKER_TOKEN": TOKEN},
                         f"{self.address}/healthz")  # fmt: skip

    def registered(self, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while "registered with" not in self.text():
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)

    def gc(self) -> None:
        """Remove what a SIGKILLed worker left (as its next start would)."""
        subprocess.run([SANDPOOL, "gc", "-c", str(self.box.config_file)], check=True,
                       capture_output=True)  # fmt: skip
