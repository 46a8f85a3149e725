"""The HTTP layer's overhead (issue 16): ``.venv/bin/python -m bench.http [-n N] [--no-gvisor]``.

One run, alternating samples (order rotated), in the bench's own workspace:

- ``api-*``: ``Sandpool.run(pool, ["true"])`` in this process (the ``bench`` contender);
- ``http-*``: the SDK's ``Client.run(["true"], pool=...)`` against a ``sandpool server`` the
  bench starts on a free loopback port (its own state, ``--no-socket``), keep-alive: the
  request, auth (one SQLite lookup), the quota, ``Sandpool.run`` in a worker thread there,
  the JSON answer;
- ``http-me``: ``GET /v1/me`` (auth and two SQLite lookups, no container): the floor of a call.

Reports p50/p99 of each and the HTTP overhead (``http-*`` p50 minus ``api-*`` p50), against the
issue's target of at most 10 ms; and, as wall times on a loaded 2-core machine move with the
load, the CPU each call costs: the server's (its utime + stime, /proc, not its runtimes'
children) and this process's (for ``api-*`` that is the whole run's Python side). Runs as
root; never part of the test suite; writes ``bench/results/http-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import contenders as c
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from sandpool.api import Sandpool
from sandpool.client import Client

ADMIN_KEY = "bench-admin-key"
TARGET_MS = 10.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuMeter:
    """CPU seconds spent per call by the server and by this process, per contender."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.spent: dict[str, list[float]] = {}

    def wrap(self, name: str, contender: c.Contender) -> c.Contender:
        def call() -> float:
            server, own = cpu_s(self.server_pid), time.process_time()
            elapsed = contender()
            totals = self.spent.setdefault(name, [0.0, 0.0, 0.0])
            totals[0] += cpu_s(self.server_pid) - server
            totals[1] += time.process_time() - own
            totals[2] += 1
            return elapsed

        return call

    def per_call_ms(self) -> dict[str, dict[str, float]]:
        return {name: {"server_cpu_ms": round(t[0] / t[2] * 1000, 2),
                       "own_cpu_ms": round(t[1] / t[2] * 1000, 2)}
                for name, t in self.spent.items()}  # fmt: skip


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """A ``sandpool server`` over the workspace's configuration (or ``config``), with a
    tenant and its key."""

    def __init__(self, ws: Workspace, config: Path | None = None) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
        env["SANDPOOL_ADMIN_KEY"] = ADMIN_KEY
        argv = [str(c.SANDPOOL_BIN), "server", "-c", str(config or ws.config_path), "--no-socket",
                "--listen", self.url.removeprefix("http://")]  # fmt: skip
        self.log = (ws.root / "server.log").open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)  # fmt: skip
        self._wait_ready()
        with Client(self.url, ADMIN_KEY) as admin:
            admin.create_tenant("bench", concurrent=64, cpu=1000, memory="1Ti",
                                creates_per_second=100000)  # fmt: skip
            self.key = admin.create_key("bench").key

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

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def http_run(client: Client, pool: str) -> c.Contender:
    def run() -> float:
        start = time.perf_counter()
        result = client.run(["true"], pool=pool, image=SMALL_IMAGE)
        elapsed = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(f"the HTTP run exited {result.exit_code}: {result.error}")
        return elapsed

    return run


def http_me(client: Client) -> c.Contender:
    def call() -> float:
        start = time.perf_counter()
        client.me()
        return time.perf_counter() - start

    return call


def measure(ws: Workspace, sp: Sandpool, args: argparse.Namespace) -> dict[str, Any]:
    server = HttpServer(ws)
    try:
        with Client(server.url, server.key) as client:
            runners: dict[str, c.Contender] = {
                "api-runc": c.api(sp, RUNC_POOL, SMALL_IMAGE),
                "http-runc": http_run(client, RUNC_POOL),
                "http-me": http_me(client),
            }
            if not args.no_gvisor:
                runners["api-runsc"] = c.api(sp, RUNSC_POOL, SMALL_IMAGE)
                runners["http-runsc"] = http_run(client, RUNSC_POOL)
            meter = CpuMeter(server.proc.pid)
            runners = {name: meter.wrap(name, run) for name, run in runners.items()}
            _log(f"http: {len(runners)} contenders x {args.n}")
            samples = alternate(runners, args.n, progress=_log)
    finally:
        server.close()
    cpu = meter.per_call_ms()
    return {name: {**summary(s), "p99_ms": round(percentile(s, 0.99) * 1000, 2), **cpu[name]}
            for name, s in samples.items()}  # fmt: skip


def overheads(latency: dict[str, Any]) -> dict[str, Any]:
    """http-* p50 minus api-* p50, per runtime, and whether it meets the target."""
    out = {}
    for runtime in ("runc", "runsc"):
        if f"http-{runtime}" in latency:
            extra = latency[f"http-{runtime}"]["p50_ms"] - latency[f"api-{runtime}"]["p50_ms"]
            out[runtime] = {"overhead_p50_ms": round(extra, 2), "pass": extra <= TARGET_MS}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("-n", type=int, default=40, help="samples per contender")
    parser.add_argument("--no-gvisor", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench.http: needs root (containers, mounts, cgroups)")
        return 2
    with Workspace(large_mb=1, podman=False) as ws:
        sp = Sandpool.from_config(str(ws.config_path))
        ws.small_image()
        latency = measure(ws, sp, args)
        runtimes = [sp.runtime(p) for p in sp.config.pools]
        sp.close()
        results = {"n": args.n, "latency": latency, "overhead": overheads(latency),
                   "leftovers": leftovers(ws, runtimes)}  # fmt: skip
    path = save_results(results, "http-")
    print("| contender | p50 ms | p99 ms | server CPU ms/call | own CPU ms/call |")
    print("|---|---|---|---|---|")
    for name, row in latency.items():
        print(f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['server_cpu_ms']:.2f} | {row['own_cpu_ms']:.2f} |")  # fmt: skip
    for runtime, row in results["overhead"].items():
        print(f"HTTP overhead ({runtime}): {row['overhead_p50_ms']:.1f} ms p50 "
              f"(target <= {TARGET_MS:g} ms: {'pass' if row['pass'] else 'FAIL'})")  # fmt: skip
    _log(f"results: {path}; leftovers: {results['leftovers']}")
    return 0 if all(row["pass"] for row in results["overhead"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
