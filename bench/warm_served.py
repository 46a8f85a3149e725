"""Warm one-shot runs through a server (issue 18): ``.venv/bin/python -m bench.warm_served
[-n N] [--no-gvisor]``.

One run, alternating samples (order rotated), in the bench's own workspace, of ``true``:

- ``raw-run-*``: the runtime's own ``runc run`` / ``runsc run`` of a prepared bundle;
- ``served-warm-*``: ``sandpool run -c WARM --pool warm-* -- true`` as a fresh process handed
  to a ``sandpool serve`` (started by the bench, its warm pools full before each sample,
  outside the timer): the client's start-up, the hand-over, the claim and the run there;
- ``served-cold-*``: the same command line on the runtime's pool without ``warmPool``;
- ``http-warm-*``: the SDK's ``Client.run(["true"], pool="warm-*")`` against a ``sandpool
  server --no-socket`` over the same warm configuration (keep-alive).

Each warm sample checks that it was a hit: one of the warm containers its server held before
is claimed or gone after. Reports p50/p99 and, as wall times on a loaded 2-core machine move
with the load, the server's CPU per call (utime + stime from /proc, not its runtimes'). Runs
as root; never part of the test suite; writes ``bench/results/warm-served-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import contenders as c
from bench import fixtures
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.http_server import CpuMeter, HttpServer
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from bench.warm import _warm_config
from sandpool.api import Sandpool
from sandpool.client import Client
from sandpool.runtime.base import ContainerRuntime
from sandpool.sandbox.launch import is_warm
from sandpool.worker.records import containers_dir, load_records

SIZE = 2


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warm_ids(state_dir: Path, pool: str, owner: int) -> set[str]:
    """The unclaimed warm containers of ``pool`` that process ``owner`` holds."""
    return {r.id for d, r in load_records(state_dir)
            if r is not None and r.pool == pool and r.owner_pid == owner
            and is_warm(containers_dir(state_dir) / r.id)}  # fmt: skip


def full(state_dir: Path, pool: str, owner: int, within: float = 120) -> set[str]:
    """The warm ids once ``owner``'s pool holds ``SIZE`` of them."""
    deadline = time.monotonic() + within
    while len(ids := warm_ids(state_dir, pool, owner)) < SIZE:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm pool {pool} of process {owner} did not fill")
        time.sleep(0.02)
    return ids


def warm_hit(contender: c.Contender, state_dir: Path, pool: str, owner: int) -> c.Contender:
    """``contender`` timed with ``owner``'s warm pool full, checked to have claimed one."""

    def run() -> float:
        before = full(state_dir, pool, owner)  # outside the timer
        elapsed = contender()
        if before <= warm_ids(state_dir, pool, owner):
            raise RuntimeError(f"a run in {pool} was not a warm hit")
        return elapsed

    return run


def http_true(client: Client, pool: str) -> c.Contender:
    def run() -> float:
        start = time.perf_counter()
        result = client.run(["true"], pool=pool, image=SMALL_IMAGE)
        elapsed = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(f"the HTTP run exited {result.exit_code}: {result.error}")
        return elapsed

    return run


class ServerMeter:
    """``CpuMeter`` bound to one server's pid, wrapping contenders."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid, self.meter = server_pid, CpuMeter()

    def wrap(self, name: str, contender: c.Contender) -> c.Contender:
        def call() -> float:
            with self.meter.span(name, self.server_pid):
                return contender()

        return call

    def per_call_ms(self) -> dict[str, dict[str, float]]:
        return {name: self.meter.per_call_ms(name) for name in self.meter.spent}


Meters = tuple[ServerMeter, ServerMeter]


def contenders(ws: Workspace, sp: Sandpool, config: Path, http: HttpServer, client: Client,
               runtimes: list[str]) -> tuple[dict[str, c.Contender], Meters]:  # fmt: skip
    """Every contender, the served and HTTP ones under their server's CPU meter."""
    socket = ws.start_server()
    assert ws.server is not None
    serve_cpu, http_cpu = ServerMeter(ws.server.pid), ServerMeter(http.proc.pid)
    state_dir = Path(sp.config.state_dir)
    runners: dict[str, c.Contender] = {}
    image = ws.small_image()
    for runtime in runtimes:
        cold, warm = (RUNC_POOL if runtime == "runc" else RUNSC_POOL), f"warm-{runtime}"
        runners[f"raw-run-{runtime}"] = c.raw(ws.raw_bundles(sp.runtime(cold), image, 1))
        served = c.cli(config, warm, SMALL_IMAGE, socket)
        runners[f"served-warm-{runtime}"] = serve_cpu.wrap(
            f"served-warm-{runtime}", warm_hit(served, state_dir, warm, ws.server.pid)
        )
        runners[f"served-cold-{runtime}"] = serve_cpu.wrap(
            f"served-cold-{runtime}", c.cli(config, cold, SMALL_IMAGE, socket)
        )
        runners[f"http-warm-{runtime}"] = http_cpu.wrap(
            f"http-warm-{runtime}", warm_hit(http_true(client, warm), state_dir, warm,
                                             http.proc.pid))  # fmt: skip
    return runners, (serve_cpu, http_cpu)


def measure(ws: Workspace, runtimes: list[str], n: int,
            ) -> tuple[dict[str, Any], list[ContainerRuntime]]:  # fmt: skip
    """The latencies, and the runtimes used (for the leftover check)."""
    config = _warm_config(ws, runtimes, SIZE)
    sp = Sandpool.from_config(str(config))  # raw bundles only: its warm pools never start
    http = HttpServer(ws, config, "served")
    try:
        with Client(http.url, http.key) as client:
            runners, (serve_cpu, http_cpu) = contenders(ws, sp, config, http, client, runtimes)
            # warm-up: byte-code cache; the serve loads the configuration (and starts its warm
            # pools) on its first request, a cold one
            for name in sorted(runners, key=lambda name: not name.startswith("served-cold")):
                if not name.startswith("raw"):
                    runners[name]()
            _log(f"warm served: {len(runners)} contenders x {n}")
            samples = alternate(runners, n, progress=_log)
    finally:
        http.close()
        if ws.server is not None:  # stopped now: it removes its warm containers before the
            ws.server.terminate()  # leftover check
            ws.server.wait(60)
            ws.server = None
    cpu = serve_cpu.per_call_ms() | http_cpu.per_call_ms()
    out = {name: {**summary(s), "p99_ms": round(percentile(s, 0.99) * 1000, 2),
                  **cpu.get(name, {})} for name, s in samples.items()}  # fmt: skip
    return out, [sp.runtime(p) for p in sp.config.pools]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_served", description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="samples per contender")
    parser.add_argument("--no-gvisor", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench.warm_served: needs root (containers, mounts, cgroups)")
        return 2
    runtimes = ["runc"] + ([] if args.no_gvisor else ["gvisor"])
    fixtures.CGROUP_PARENT = f"sandpool-bench-warm-served-{os.getpid()}"
    load_start = os.getloadavg()
    with Workspace(large_mb=1, podman=False) as ws:
        ws.small_image()
        latency, used = measure(ws, runtimes, args.n)
        results = {"n": args.n, "load": [load_start, os.getloadavg()], "latency": latency,
                   "ratios": ratios(latency, runtimes),
                   "leftovers": leftovers(ws, used)}  # fmt: skip
    path = save_results(results, "warm-served-")
    _report(results, path)
    return 0


def ratios(latency: dict[str, Any], runtimes: list[str]) -> dict[str, float]:
    """Each warm contender's p50 over the raw run's, per runtime."""
    out = {}
    for runtime in runtimes:
        raw = latency[f"raw-run-{runtime}"]["p50_ms"]
        for kind in ("served-warm", "served-cold", "http-warm"):
            out[f"{kind}-{runtime}"] = round(latency[f"{kind}-{runtime}"]["p50_ms"] / raw, 2)
    return out


def _report(results: dict[str, Any], path: Path) -> None:
    print(f"load average: start {results['load'][0]}, end {results['load'][1]}")
    print("| contender | p50 ms | p99 ms | server CPU ms/call | / raw run (p50) |")
    print("|---|---|---|---|---|")
    for name, row in results["latency"].items():
        ratio = results["ratios"].get(name)
        print(
            f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row.get('server_cpu_ms', '-')} | {'-' if ratio is None else f'{ratio}x'} |"
        )
    _log(f"results: {path}; leftovers: {results['leftovers']}")


if __name__ == "__main__":
    sys.exit(main())
