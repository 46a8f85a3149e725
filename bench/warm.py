"""Warm pool benchmarks (issue 18): ``.venv/bin/python -m bench.warm [-n N] [--no-gvisor]``.

1. Time to first command: create + exec ``true`` + its exit code through the Python API with
   a warm hit (the pool refilled outside the timer), against a raw ``runc run`` / ``runsc
   run`` of ``true`` from a prepared bundle and a cold create + exec, alternating; the claim
   alone (``create``'s return) is reported apart. One-shot ``Sandpool.run`` of ``true`` with
   a warm hit, and cold, in the same alternation. gVisor execs take a pre-started ``runsc
   exec`` (``sandbox.exec_stub``); the ``-plain`` contenders leave it alone (the old path,
   a ``runsc exec`` per exec), side by side: the warm hit, and one ``exec true`` in a
   sandbox that already ran one (``exec-…-gvisor``).
2. Burst: 100 creates from 20 threads against a warm pool of 20 (runc; ``--burst-gvisor``
   adds gVisor): every create must succeed (misses go cold); p50/p99 of create, hits. The
   same with 100 one-shot runs of ``true``.
   ``--http``: the same time to first command through the SDK (``Sandbox.create`` +
   ``exec`` against a ``sandpool server`` the bench starts, keep-alive), each sample after
   an untimed wait for the server's refill (``HTTP_REFILL_WAIT_S``; the API tells no tenant
   whether a pool is full): the create alone is reported apart, a miss shows there as a
   cold create (hundreds of ms).
3. Memory per idle warm sandbox: PSS of its processes and its cgroup's usage, and (gVisor)
   of its stub's ``runsc exec`` host process, which is outside the cgroup.

Runs as root with a cgroup parent of its own; never part of the test suite. Prints a table
and writes ``bench/results/warm-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import api_timers as timers
from bench import contenders as c
from bench import fixtures
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.http_server import HttpServer
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from bench.sandboxes import _memory, _pss_kb
from sandpool.api import Sandpool
from sandpool.client import Client
from sandpool.client.sandbox import Sandbox
from sandpool.sandbox import SandboxRequest, exec_stub

HTTP_REFILL_WAIT_S = 2.0
BURST_SIZE, BURST_CREATES, BURST_THREADS = 20, 100, 20


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _warm_config(ws: Workspace, runtimes: list[str], size: int) -> Path:
    """The workspace's config plus a pool ``warm-<runtime>`` of ``size`` per runtime."""
    text = ws.config_path.read_text() + fixtures.warm_pools(ws.root, runtimes, size)
    path = ws.root / f"warm-{size}.yaml"
    path.write_text(text)
    return path


def _ms(samples: list[float]) -> dict[str, float]:
    return summary(samples) | {"p99_ms": round(percentile([s * 1000 for s in samples], 0.99), 2)}


def first_command(ws: Workspace, sp: Sandpool, runtimes: list[str], n: int) -> dict[str, Any]:
    """Section 1."""
    image = ws.small_image()
    runners: dict[str, c.Contender] = {}
    claims: dict[str, list[float]] = {}
    for runtime in runtimes:
        cold_pool = RUNC_POOL if runtime == "runc" else RUNSC_POOL
        runners[f"raw-run-{runtime}"] = c.raw(ws.raw_bundles(sp.runtime(cold_pool), image, 1))
        claims[runtime] = []
        runners[f"api-warm-{runtime}"] = lambda r=runtime: _warm_hit(sp, f"warm-{r}", claims[r])
        runners[f"api-cold-{runtime}"] = lambda p=cold_pool: timers.first_command(sp, p).elapsed
        runners[f"run-warm-{runtime}"] = lambda r=runtime: _warm_run(sp, f"warm-{r}")
        runners[f"run-cold-{runtime}"] = lambda p=cold_pool: _run_true(sp, p)
    if "gvisor" in runtimes:
        _plain_contenders(sp, runners, claims)
    box = sp.sandboxes.create(SandboxRequest(RUNSC_POOL, SMALL_IMAGE)).id if claims else None
    if box is not None and "gvisor" in runtimes:
        runners["exec-stub-gvisor"] = lambda: timers.exec_true(sp, box)
        runners["exec-plain-gvisor"] = lambda: _plain(lambda: timers.exec_true(sp, box))
    try:
        samples = alternate(runners, n, progress=_log)
    finally:
        if box is not None:
            sp.sandboxes.terminate(box)
    out = {name: _ms(s) for name, s in samples.items()}
    for runtime, claimed in claims.items():
        out[f"claim-only-{runtime}"] = _ms(claimed[-n:])
    return out


def _plain_contenders(sp: Sandpool, runners: dict[str, c.Contender],
                      claims: dict[str, list[float]]) -> None:  # fmt: skip
    """gVisor's warm hit with its exec stub left alone: the old ``runsc exec`` path."""
    claims["gvisor-plain"] = []
    runners["api-warm-gvisor-plain"] = lambda: _plain(
        lambda: _warm_hit(sp, "warm-gvisor", claims["gvisor-plain"])
    )


def _plain(measure: c.Contender) -> float:
    """``measure`` with gVisor execs through a ``runsc exec`` each (``exec_stub``)."""
    exec_stub.PLAIN_EXECS = True
    try:
        return measure()
    finally:
        exec_stub.PLAIN_EXECS = False


def _warm_hit(sp: Sandpool, pool: str, claims: list[float]) -> float:
    if not sp.sandboxes.wait_warm(120):  # outside the timer: the pool is full
        raise RuntimeError(f"warm pool {pool} did not fill: {sp.sandboxes.warm_stats()}")
    before = {s.pool: s.claims for s in sp.sandboxes.warm_stats()}
    first = timers.first_command(sp, pool)
    after = {s.pool: s.claims for s in sp.sandboxes.warm_stats()}
    if after[pool] != before[pool] + 1:
        raise RuntimeError(f"create in {pool} was not a warm hit")
    claims.append(first.create)
    return first.elapsed


def _warm_run(sp: Sandpool, pool: str) -> float:
    if not sp.sandboxes.wait_warm(120):  # outside the timer: the pool is full
        raise RuntimeError(f"warm pool {pool} did not fill: {sp.sandboxes.warm_stats()}")
    before = {s.pool: s.claims for s in sp.sandboxes.warm_stats()}
    elapsed = _run_true(sp, pool)
    if {s.pool: s.claims for s in sp.sandboxes.warm_stats()}[pool] != before[pool] + 1:
        raise RuntimeError(f"run in {pool} was not a warm hit")
    return elapsed


def _run_true(sp: Sandpool, pool: str) -> float:
    start = time.perf_counter()
    code = sp.run(pool, ["true"], image=SMALL_IMAGE).exit_code
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"run of true in {pool} exited {code}")
    return elapsed


def http_first_command(ws: Workspace, runtimes: list[str], n: int) -> dict[str, Any]:
    """Section 1 through the SDK (see the module docstring)."""
    config = _warm_config(ws, runtimes, 1)
    server = HttpServer(ws, config, "warm-http")
    creates: dict[str, list[float]] = {r: [] for r in runtimes}
    try:
        with Client(server.url, server.key) as client:
            runners = {f"http-warm-{r}": (lambda r=r: _http_hit(client, f"warm-{r}", creates[r]))
                       for r in runtimes}  # fmt: skip
            samples = alternate(runners, n, progress=_log)
    finally:
        server.close()
    out = {name: _ms(s) for name, s in samples.items()}
    return out | {f"http-create-only-{r}": _ms(c[-n:]) for r, c in creates.items()}


def _http_hit(client: Client, pool: str, creates: list[float]) -> float:
    time.sleep(HTTP_REFILL_WAIT_S)  # untimed: the server refills its pool meanwhile
    start = time.perf_counter()
    box = Sandbox.create(pool, SMALL_IMAGE, client=client)
    created = time.perf_counter()
    code = box.exec(["true"]).exit_code
    elapsed = time.perf_counter() - start
    box.terminate()  # outside the timer
    creates.append(created - start)
    if code != 0:
        raise RuntimeError(f"first exec exited {code}")
    return elapsed


def burst(sp: Sandpool, runtime: str, runs: bool = False) -> dict[str, Any]:
    """Section 2, for one runtime (its pool holds ``BURST_SIZE`` warm sandboxes): creates,
    or (``runs``) one-shot runs of ``true``."""
    pool = f"warm-{runtime}"
    if not sp.sandboxes.wait_warm(600):
        raise RuntimeError(f"warm pool {pool} did not fill: {sp.sandboxes.warm_stats()}")
    before = next(s for s in sp.sandboxes.warm_stats() if s.pool == pool)
    lock, times, boxes, failures = threading.Lock(), [], [], []

    def create(_: int) -> None:
        start = time.perf_counter()
        try:
            if runs:
                _run_true(sp, pool)
                box = None
            else:
                box = sp.sandboxes.create(SandboxRequest(pool, SMALL_IMAGE)).id
        except Exception as exc:
            with lock:
                failures.append(repr(exc))
            return
        with lock:
            times.append(time.perf_counter() - start)
            boxes.extend([box] if box else [])

    started = time.perf_counter()
    with ThreadPoolExecutor(BURST_THREADS) as executor:
        list(executor.map(create, range(BURST_CREATES)))
    wall = time.perf_counter() - started
    after = next(s for s in sp.sandboxes.warm_stats() if s.pool == pool)
    with ThreadPoolExecutor(8) as executor:
        list(executor.map(sp.sandboxes.terminate, boxes))
    ms = [t * 1000 for t in times]
    return {"kind": "runs" if runs else "creates", "creates": BURST_CREATES,
            "threads": BURST_THREADS, "warm_size": BURST_SIZE,
            "ok": len(times), "failed": len(failures), "failures": failures[:5],
            "warm_hits": after.claims - before.claims, "misses": after.misses - before.misses,
            "create_p50_ms": round(percentile(ms, 0.5), 1),
            "create_p99_ms": round(percentile(ms, 0.99), 1), "wall_s": round(wall, 2)}  # fmt: skip


def memory(sp: Sandpool) -> dict[str, Any]:
    """Section 3: per idle warm sandbox, by pool (the pools full and settled)."""
    sp.sandboxes.wait_warm(120)
    time.sleep(2)
    by_pool: dict[str, list[str]] = {}
    for info in sp.sandboxes.list(state="warm"):
        by_pool.setdefault(info.pool, []).append(info.id)
    return {pool: {"sandboxes": len(ids), **_memory(sp, ids), **_stub_memory(ids)}
            for pool, ids in by_pool.items()}  # fmt: skip


def _stub_memory(boxes: list[str]) -> dict[str, Any]:
    """PSS of the sandboxes' exec stubs' ``runsc exec`` host processes (gVisor only)."""
    pss = []
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = proc.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"exec" in cmdline and b"stub" in cmdline and any(b.encode() in cmdline for b in boxes):
            pss.append(_pss_kb(proc.parent.name))
    if not pss:
        return {}
    return {"stubs": len(pss), "stub_pss_mb_mean": round(sum(pss) / len(pss) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    """Run every section in one workspace and report."""
    parser = argparse.ArgumentParser(prog="python -m bench.warm", description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="samples per latency contender")
    parser.add_argument("--no-gvisor", action="store_true")
    parser.add_argument("--burst-gvisor", action="store_true", help="the burst on gVisor too")
    parser.add_argument("--no-burst", action="store_true", help="sections 1 and 3 only")
    parser.add_argument("--http", action="store_true", help="section 1 through the SDK too")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench: needs root (containers, mounts, cgroups)")
        return 2
    runtimes = ["runc"] + ([] if args.no_gvisor else ["gvisor"])
    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "load_start": os.getloadavg()}}
    fixtures.CGROUP_PARENT = f"sandpool-bench-warm-{os.getpid()}"  # never another bench's
    with Workspace(large_mb=1, podman=False) as ws:
        ws.small_image()
        used = []
        if args.http:
            _log("time to first command through the HTTP SDK")
            results["http_first_command"] = http_first_command(ws, runtimes, args.n)
        with Sandpool.from_config(str(_warm_config(ws, runtimes, 2))) as sp:
            sp.sandboxes.start_warm()
            _log("time to first command")
            results["first_command"] = first_command(ws, sp, runtimes, args.n)
            _log("memory per idle warm sandbox")
            results["memory"] = memory(sp)
            results["stats"] = [s.to_json() for s in sp.sandboxes.warm_stats()]
            used += [sp.runtime(f"warm-{r}") for r in runtimes]
        for runtime in [] if args.no_burst else ["runc"] + (["gvisor"] * args.burst_gvisor):
            _log(f"burst: {BURST_CREATES} creates from {BURST_THREADS} threads ({runtime})")
            with Sandpool.from_config(str(_warm_config(ws, [runtime], BURST_SIZE))) as sp:
                sp.sandboxes.start_warm()
                results[f"burst-{runtime}"] = burst(sp, runtime)
                results[f"burst-runs-{runtime}"] = burst(sp, runtime, runs=True)
        results["host"]["load_end"] = os.getloadavg()
        results["leftovers"] = leftovers(ws, used)
    _report(results)
    return 0


def _report(results: dict[str, Any]) -> None:
    save_results(results, "warm-")
    print(f"load average: start {results['host']['load_start']}, end {results['host']['load_end']}")
    for name, row in (results["first_command"] | results.get("http_first_command", {})).items():
        print(f"{name:<22} p50 {row['p50_ms']:>8.1f} ms  p99 {row['p99_ms']:>8.1f} ms")
    for runtime in ("runc", "gvisor"):
        raw, warm, run = (
            results["first_command"].get(f"{k}-{runtime}")
            for k in ("raw-run", "api-warm", "run-warm")
        )
        if raw and warm and run:
            print(f"warm time to first command / raw {runtime} run: "
                  f"{warm['p50_ms'] / raw['p50_ms']:.2f}x (p50); warm Sandpool.run / raw: "
                  f"{run['p50_ms'] / raw['p50_ms']:.2f}x (p50)")  # fmt: skip
    bursts = [f"burst{k}-{r}" for k in ("", "-runs") for r in ("runc", "gvisor")]
    for key in ("memory", *bursts, "leftovers"):
        if key in results:
            print(f"{key}: {json.dumps(results[key])}")


if __name__ == "__main__":
    sys.exit(main())
