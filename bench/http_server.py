"""What the HTTP benches share: a ``sandpool server`` process of the bench's own (its own
state dir, a tenant and its key), the CPU each call costs it, and its warm pools seen from
outside (the warm sandboxes' state files in its state dir)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import contenders as c
from bench import fixtures
from bench.fixtures import CONFIG, RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace
from sandpool.client import Client, Sandbox
from sandpool.config.loader import LoadedConfig
from sandpool.errors import ServiceError
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.factory import create_runtime
from sandpool.sandbox.launch import is_warm, load_sandbox_file
from sandpool.worker.records import containers_dir

__all__ = ["CpuMeter", "HttpServer", "cpu_s", "server_config"]

ADMIN_KEY = "bench-admin-key"
TICKS = os.sysconf("SC_CLK_TCK")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_config(ws: Workspace, name: str, warm_size: int = 0) -> Path:
    """A configuration like the workspace's (same pools, runtimes and gVisor root, so that
    the bench's raw ``exec`` reaches the server's containers) with the state dir
    ``<root>/state-<name>``; with ``warm_size``, pools ``warm-runc`` and ``warm-gvisor``
    holding that many warm sandboxes of the small image."""
    text = CONFIG.format(
        root=ws.root, cgroup=fixtures.CGROUP_PARENT, gvisor=RUNSC_POOL, runc=RUNC_POOL
    )
    text = text.replace(f"stateDir: {ws.root}/state\n", f"stateDir: {ws.root}/state-{name}\n")
    if warm_size:
        text += fixtures.warm_pools(ws.root, ("runc", "gvisor"), warm_size)
    path = ws.root / f"sandpool-{name}.yaml"
    path.write_text(text)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """A ``sandpool server`` over ``config`` (no serve socket), with a tenant and its key."""

    def __init__(self, ws: Workspace, config: Path, name: str) -> None:
        self.state_dir, self.config = ws.root / f"state-{name}", config
        self.log = (ws.root / f"server-{name}.log").open("wb")
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.url = f"http://127.0.0.1:{_free_port()}"
            self.proc = self._start()
            try:
                self._wait_ready()
                self.key = self._tenant_key()
                break
            except (RuntimeError, ServiceError):
                self.proc.terminate()
                self.proc.wait(120)
                if attempt == 2:
                    raise
        self._warm_started = False

    def _start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
        env["SANDPOOL_ADMIN_KEY"] = ADMIN_KEY
        argv = [str(c.SANDPOOL_BIN), "server", "-c", str(self.config), "--no-socket",
                "--listen", self.url.removeprefix("http://")]  # fmt: skip
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=self.log, stderr=self.log)  # fmt: skip

    def _tenant_key(self) -> str:
        """A tenant with room for the bench, and its key (the admin key fails with
        Unauthenticated on a server that is not ours)."""
        with Client(self.url, ADMIN_KEY) as admin:
            admin.create_tenant("bench", concurrent=64, cpu=1000, memory="1Ti",
                                creates_per_second=100000)  # fmt: skip
            return admin.create_key("bench").key

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandpool server exited {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("sandpool server not ready in 60 s")

    def client(self) -> Client:
        """An SDK client with the tenant's key (keep-alive: reuse it)."""
        return Client(self.url, self.key)

    def runtime(self, pool: str) -> ContainerRuntime:
        """The runtime of the server's ``pool`` (its state root: the raw contenders reach
        the server's containers, and the leak checks see them)."""
        resolved = LoadedConfig.load([str(self.config)]).resolved
        return create_runtime(resolved.pool(pool), resolved)

    def warm_ids(self, pool: str) -> set[str]:
        """The ids of ``pool``'s warm sandboxes started and not claimed yet."""
        found = set()
        for directory in containers_dir(self.state_dir).glob("*"):
            if is_warm(directory) and _pool_of(directory) == pool:
                found.add(directory.name)
        return found

    def wait_warm(self, pool: str, size: int, timeout: float = 120.0) -> set[str]:
        """Wait until ``pool`` holds ``size`` warm sandboxes; their ids. (A server starts its
        warm pools at its first sandbox create: one is made and ended first if none is.)"""
        if not self._warm_started:
            with self.client() as client:
                Sandbox.create(pool=pool, image=SMALL_IMAGE, client=client).terminate()
            self._warm_started = True
        deadline = time.monotonic() + timeout
        while len(ids := self.warm_ids(pool)) < size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's warm pool {pool} did not fill in {timeout:g} s")
            time.sleep(0.05)
        time.sleep(0.05)  # its state file is written just before it joins the pool
        return ids

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)
        self.log.close()


def _pool_of(directory: Path) -> str | None:
    loaded = load_sandbox_file(directory)
    return None if loaded is None else loaded[0].pool


class CpuMeter:
    """CPU seconds spent in the timed part of each call by a server (its utime + stime, not
    its runtimes' children) and by this process, per contender."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def span(self, name: str, server_pid: int | None) -> Iterator[None]:
        """Count what the block costs against contender ``name``."""
        server = cpu_s(server_pid) if server_pid else 0.0
        own = time.process_time()
        yield
        totals = self.spent.setdefault(name, [0.0, 0.0, 0.0])
        totals[0] += (cpu_s(server_pid) - server) if server_pid else 0.0
        totals[1] += time.process_time() - own
        totals[2] += 1

    def per_call_ms(self, name: str) -> dict[str, float]:
        """Mean server and own CPU ms per call of ``name`` (empty if it never ran)."""
        t = self.spent.get(name)
        if not t:
            return {}
        out = {"own_cpu_ms": round(t[1] / t[2] * 1000, 2)}
        if t[0]:
            out["server_cpu_ms"] = round(t[0] / t[2] * 1000, 2)
        return out
