"""One-shot runs over HTTP against the Python API, cold and warm (issues 16 and 18):
``.venv/bin/python -m bench.http_oneshot [-n N] [--no-gvisor] [--py-spy DIR]``.

One ``sandpool server`` alone (``bench.http_server``: own state dir, no serve socket, one
tenant) over a configuration with the cold pools and ``warm-runc``/``warm-gvisor``
(``warmPool.size: 2``), and a ``Sandpool`` in this process over the same pools with its warm
pools started. Samples alternate (order rotated, ``bench.measure.alternate``), of ``true``:

- ``api-cold-*`` / ``http-cold-*``: ``Sandpool.run`` / the SDK's ``Client.run`` (keep-alive)
  in the runtime's pool without ``warmPool``;
- ``api-warm-*`` / ``http-warm-*``: the same in ``warm-*``, each sample taken with the warm
  pool full (waited for outside the timer) and checked to have claimed a warm container;
- ``http-me``: ``GET /v1/me``, the floor of a call.

Every sample starts with every warm pool full (the server's and this process's, waited for
outside the timer): a refill started by the sample before, of another contender in another
process, would otherwise compete with it for the 2 cores (it did: http-warm-gvisor ran right
after api-warm-gvisor and paid for its refill).

Every row has p50/p99 and the server's CPU per call (its utime + stime from /proc, not its
runtimes' children). Target: HTTP p50 - API p50 at most 10 ms, each runtime, cold and warm;
exit status 1 when one is missed. Beside it the paired median (of HTTP minus API in the same
iteration: cold runs vary by tens of ms, a difference of two p50s moves with it), and the warm
pools' claims and misses (the server's from its ``/metrics``). ``--py-spy DIR`` records the
server with py-spy (raw, ``--gil``) during the samples into ``DIR/server.txt``. ``bench.http
--sections oneshot`` runs the same contenders (its cold server for the cold ones, its warm
server for the warm ones). Runs as root; writes ``bench/results/http-oneshot-<ts>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import contenders as c
from bench import fixtures
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.http_server import CpuMeter, HttpServer, server_config
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from bench.warm_served import warm_ids
from sandpool.api import Sandpool
from sandpool.client import Client

OVERHEAD_MS = 10.0  # HTTP p50 minus API p50 (issue 16)
SIZE = 2
FILL_TIMEOUT = 120.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class WarmPools:
    """The unclaimed warm containers of one process (``owner``) in ``state_dir``."""

    def __init__(self, state_dir: Path, owner: int) -> None:
        self.state_dir, self.owner = state_dir, owner

    def full(self, pool: str) -> set[str]:
        """The warm ids once ``pool`` holds ``SIZE`` of them."""
        deadline = time.monotonic() + FILL_TIMEOUT
        while len(ids := warm_ids(self.state_dir, pool, self.owner)) < SIZE:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm pool {pool} of process {self.owner} did not fill")
            time.sleep(0.02)
        time.sleep(0.02)  # its state file is written just before it joins the pool
        return ids

    def hit(self, contender: c.Contender, pool: str) -> c.Contender:
        """``contender`` timed with ``pool`` full, checked to have claimed one of its own."""

        def run() -> float:
            before = self.full(pool)  # outside the timer
            elapsed = contender()
            if before <= warm_ids(self.state_dir, pool, self.owner):
                raise RuntimeError(f"a run in {pool} was not a warm hit")
            return elapsed

        return run


def api_run(sp: Sandpool, pool: str, meter: CpuMeter, name: str) -> c.Contender:
    """``Sandpool.run(["true"])`` of ``pool`` in this process."""
    api = c.api(sp, pool, SMALL_IMAGE)

    def run() -> float:
        with meter.span(name, None):
            return api()

    return run


def http_run(client: Client, pool: str, meter: CpuMeter, name: str, pid: int) -> c.Contender:
    """The SDK's ``Client.run(["true"])`` of ``pool`` against server ``pid``."""

    def run() -> float:
        with meter.span(name, pid):
            start = time.perf_counter()
            result = client.run(["true"], pool=pool, image=SMALL_IMAGE)
            elapsed = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(f"the HTTP run exited {result.exit_code}: {result.error}")
        return elapsed

    return run


def http_me(client: Client, meter: CpuMeter, pid: int) -> c.Contender:
    """``GET /v1/me``: the floor of an authenticated call."""

    def call() -> float:
        with meter.span("http-me", pid):
            start = time.perf_counter()
            client.me()
            return time.perf_counter() - start

    return call


Served = tuple[Client, HttpServer]


def contenders(sp: Sandpool, cold: Served, warm: Served, runtimes: list[str],
               meter: CpuMeter) -> dict[str, c.Contender]:  # fmt: skip
    """Every one-shot contender: ``cold``/``warm`` are a server and a client of it (one
    server may be both); ``sp`` has started its warm pools."""
    (cold_client, cold_server), (warm_client, warm_server) = cold, warm
    cold_pid, warm_pid = cold_server.proc.pid, warm_server.proc.pid
    api_warm = WarmPools(Path(sp.config.state_dir), os.getpid())
    http_warm = WarmPools(warm_server.state_dir, warm_pid)
    runners: dict[str, c.Contender] = {"http-me": http_me(cold_client, meter, cold_pid)}
    watched = [(w, f"warm-{rt}") for w in (api_warm, http_warm) for rt in runtimes]
    for rt in runtimes:
        pool, warm_pool = (RUNC_POOL if rt == "runc" else RUNSC_POOL), f"warm-{rt}"
        runners[f"api-cold-{rt}"] = api_run(sp, pool, meter, f"api-cold-{rt}")
        runners[f"http-cold-{rt}"] = http_run(cold_client, pool, meter, f"http-cold-{rt}",
                                              cold_pid)  # fmt: skip
        runners[f"api-warm-{rt}"] = api_warm.hit(
            api_run(sp, warm_pool, meter, f"api-warm-{rt}"), warm_pool
        )
        runners[f"http-warm-{rt}"] = http_warm.hit(
            http_run(warm_client, warm_pool, meter, f"http-warm-{rt}", warm_pid), warm_pool
        )
    return {name: quiet(runner, watched) for name, runner in runners.items()}


def quiet(contender: c.Contender, watched: list[tuple[WarmPools, str]]) -> c.Contender:
    """``contender`` timed once every warm pool (the server's and this process's) is full:
    no sample pays for the refill an earlier sample of another contender started."""

    def run() -> float:
        for pools, pool in watched:
            pools.full(pool)  # outside the timer
        return contender()

    return run


def rows(samples: dict[str, list[float]], meter: CpuMeter) -> dict[str, Any]:
    """p50/p99 and CPU per call of each contender."""
    return {name: {**summary(s), "p99_ms": round(percentile(s, 0.99) * 1000, 2),
                   **meter.per_call_ms(name)}
            for name, s in samples.items()}  # fmt: skip


def targets(results: dict[str, Any], pairs: dict[str, float]) -> list[dict[str, Any]]:
    """HTTP p50 - API p50 of each runtime, cold and warm, against ``OVERHEAD_MS`` (with the
    paired median beside it, for information)."""
    out = []
    for key in results:
        if key.startswith("http-") and key != "http-me":
            api = results.get("api-" + key.removeprefix("http-"))
            if api is not None:
                kind = key.removeprefix("http-")
                value = round(results[key]["p50_ms"] - api["p50_ms"], 2)
                out.append({"target": f"one-shot {kind}: HTTP p50 - API p50",
                            "value_ms": value, "limit_ms": OVERHEAD_MS,
                            "paired_ms": pairs.get(kind),
                            "pass": value <= OVERHEAD_MS})  # fmt: skip
    return out


def warm_counts(sp: Sandpool, servers: list[HttpServer]) -> dict[str, dict[str, float]]:
    """Claims and misses of each warm pool: this process's (``api/<pool>``) and each server's
    (``<state dir>/<pool>``, from its ``/metrics``)."""
    out = {f"api/{s.pool}": {"claims": s.claims, "misses": s.misses}
           for s in sp.warm_stats()}  # fmt: skip
    for server in servers:
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        for line in text.splitlines():
            for counter in ("claims", "misses"):
                prefix = f'sandpool_warm_pool_{counter}_total{{pool="'
                if line.startswith(prefix):
                    pool, _, value = line.removeprefix(prefix).partition('"} ')
                    out.setdefault(f"{server.state_dir.name}/{pool}", {})[counter] = float(value)
    return out


def paired(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median over iterations of HTTP minus API of the same iteration (the samples alternate),
    per ``http-*`` contender with an ``api-*`` twin: steadier than a difference of p50s."""
    out = {}
    for name, http in samples.items():
        api = samples.get("api-" + name.removeprefix("http-"))
        if name.startswith("http-") and api:
            diffs = [(h - a) * 1000 for h, a in zip(http, api, strict=True)]
            out[name.removeprefix("http-")] = round(percentile(diffs, 0.5), 2)
    return out


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "-p", str(pid), "-r", "500", "-f", "raw", "--gil",
            "--nonblocking", "-o", str(out / "server.txt")]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(ws: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    """The samples against one server alone; leftovers checked after it stopped."""
    runtimes = ["runc"] + ([] if args.no_gvisor else ["gvisor"])
    sp = Sandpool.from_config(str(server_config(ws, "api", SIZE)))
    server = HttpServer(ws, server_config(ws, "oneshot", SIZE), "oneshot")
    used = [server.runtime(p) for p in (RUNC_POOL, RUNSC_POOL, "warm-runc", "warm-gvisor")]
    spy = None
    try:
        sp.start_warm()
        meter, pid = CpuMeter(), server.proc.pid
        with server.client() as client:
            runners = contenders(sp, (client, server), (client, server), runtimes, meter)
            _log(f"one-shot runs: {len(runners)} contenders x {args.n}")
            if args.py_spy:
                spy = _py_spy(pid, Path(args.py_spy))
            samples = alternate(runners, args.n, progress=_log)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        hits = warm_counts(sp, [server])
        server.close()
        used += [sp.runtime(p) for p in sp.config.pools]
        sp.close()
    return {"oneshot": rows(samples, meter), "paired_ms": paired(samples), "warm_hits": hits,
            "leftovers": leftovers(ws, used)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_oneshot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", type=int, default=20, help="samples per contender")
    parser.add_argument("--no-gvisor", action="store_true")
    parser.add_argument("--py-spy", metavar="DIR", help="record the server with py-spy")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench.http_oneshot: needs root (containers, mounts, cgroups)")
        return 2
    fixtures.CGROUP_PARENT = f"sandpool-bench-oneshot-{os.getpid()}"  # never another bench's
    load_start = os.getloadavg()
    with Workspace(large_mb=1, podman=False) as ws:
        ws.small_image()
        results: dict[str, Any] = {"n": args.n, **measure(ws, args)}
    results["load"] = [load_start, os.getloadavg()]
    results["targets"] = targets(results["oneshot"], results["paired_ms"])
    path = save_results(results, "http-oneshot-")
    report(results)
    _log(f"results: {path}; leftovers: {results['leftovers']}")
    return 0 if all(t["pass"] for t in results["targets"]) else 1


def report(results: dict[str, Any]) -> None:
    """The table and the targets on stdout."""
    print(f"load average: start {results['load'][0]}, end {results['load'][1]}")
    print("| contender | p50 ms | p99 ms | server CPU ms/call | own CPU ms/call |")
    print("|---|---|---|---|---|")
    for name, row in results["oneshot"].items():
        print(f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row.get('server_cpu_ms', '-')} | {row.get('own_cpu_ms', '-')} |")  # fmt: skip
    for t in results["targets"]:
        print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']}: {t['value_ms']} ms "
              f"(limit {t['limit_ms']}; paired median {t['paired_ms']} ms)")  # fmt: skip
    print(f"warm claims / misses: {json.dumps(results['warm_hits'])}")


if __name__ == "__main__":
    sys.exit(main())
