"""The HTTP layer against the Python API and the raw runtimes (issues 16 and 18), in one run:
``.venv/bin/python -m bench.http [-n N] [--no-gvisor] [--sandboxes 200 --clients 20] ...``.

Two ``sandpool server`` processes of the bench's own (``bench.http_server``: own state dirs,
no serve socket, one tenant), ``cold`` (no warm pool) and ``warm`` (pools ``warm-runc`` and
``warm-gvisor`` of ``warmPool.size: 2``), and a ``Sandpool`` in this process with the same
pools. Latency samples alternate (order rotated, ``bench.measure.alternate``):

1. Time to first command (``bench.http_sandboxes``): create + exec ``true`` + exit code through
   the SDK's ``Sandbox`` over keep-alive HTTP (``http-cold-*``, ``http-warm-*``), through the
   Python API (``api-cold-*``, ``api-warm-*``) and raw ``runc run``/``runsc run``
   (``raw-run-*``); warm samples count only warm hits, the pool refilled outside the timer.
2. Exec round trip of ``true`` in a running sandbox: SDK (``http-exec-*``), Python API
   (``api-exec-*``), raw ``runc exec``/``runsc exec`` in the HTTP contender's container.
3. One-shot runs (``bench.http_oneshot``): the SDK's ``Client.run(["true"])`` against
   ``Sandpool.run``, cold (``http-cold-*``, ``api-cold-*``) and warm hits (``http-warm-*``
   on the warm server, ``api-warm-*``), each sample with every warm pool full, and
   ``GET /v1/me`` (``http-me``), the floor of a call; the paired medians and warm hits.
4. Concurrency (``bench.http_concurrency``): ``--sandboxes`` sandboxes by ``--clients``
   concurrent SDK clients, ``--execs`` execs and a file round trip each, on runc
   (``--concurrency-gvisor``: gVisor too): all must succeed, none may be left.

Each latency row has p50/p99 and, as wall times on a loaded 2-core machine move with the
load, the CPU each call costs: the server's (its utime + stime from /proc, not its runtimes'
children) and this process's. Targets: HTTP p50 minus API p50 at most 10 ms (first command
cold and warm, one-shot run), warm HTTP first command p50 below 20 ms runc / 60 ms gVisor,
HTTP exec p50 at most raw exec + 10 ms; exit status 1 when one is missed. Runs as root;
never part of the test suite; writes ``bench/results/http-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench import contenders as c
from bench import fixtures, http_oneshot
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.http_concurrency import concurrency
from bench.http_sandboxes import api_exec, api_first, http_exec, http_first, raw_exec
from bench.http_server import CpuMeter, HttpServer, server_config
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from sandpool.api import Sandpool
from sandpool.client import Sandbox
from sandpool.sandbox import SandboxRequest

OVERHEAD_MS = 10.0  # HTTP p50 minus API p50 (issue 16); HTTP exec minus raw exec
WARM_HTTP_MS = {"runc": 20.0, "gvisor": 60.0}  # issue 18, warm first command over HTTP
WARM_SIZE = 2
SECTIONS = ("first", "exec", "oneshot", "concurrency")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pools(args: argparse.Namespace) -> dict[str, str]:
    """runtime -> its cold pool."""
    pools = {"runc": RUNC_POOL}
    if not args.no_gvisor:
        pools["gvisor"] = RUNSC_POOL
    return pools


def _rows(samples: dict[str, list[float]], meter: CpuMeter) -> dict[str, Any]:
    return {name: {**summary(s), "p99_ms": round(percentile(s, 0.99) * 1000, 2),
                   **meter.per_call_ms(name)}
            for name, s in samples.items()}  # fmt: skip


def first_command(ws: Workspace, sp: Sandpool, cold: HttpServer, warm: HttpServer,
                  args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Section 1."""
    image, meter, runners = ws.small_image(), CpuMeter(), {}
    warm_pools = [f"warm-{rt}" for rt in _pools(args)]

    def settle() -> None:  # every warm pool of the bench full: no refill beside a sample
        if not sp.sandboxes.wait_warm(120):
            raise RuntimeError(f"the API's warm pools did not fill: {sp.sandboxes.warm_stats()}")
        for name in warm_pools:
            warm.wait_warm(name, WARM_SIZE)

    with cold.client() as cold_client, warm.client() as warm_client:
        for rt, pool in _pools(args).items():
            runners[f"raw-run-{rt}"] = c.raw(ws.raw_bundles(sp.runtime(pool), image, 1))
            runners[f"api-cold-{rt}"] = api_first(sp, pool, meter, f"api-cold-{rt}")
            runners[f"http-cold-{rt}"] = http_first(cold_client, cold, pool, meter,
                                                    f"http-cold-{rt}")  # fmt: skip
            runners[f"api-warm-{rt}"] = api_first(sp, f"warm-{rt}", meter, f"api-warm-{rt}",
                                                  warm=True, settle=settle)  # fmt: skip
            runners[f"http-warm-{rt}"] = http_first(warm_client, warm, f"warm-{rt}", meter,
                                                    f"http-warm-{rt}", WARM_SIZE,
                                                    settle=settle)  # fmt: skip
        _log(f"time to first command: {len(runners)} contenders x {args.n}")
        return _rows(alternate(runners, args.n, progress=_log), meter)


def exec_round_trip(sp: Sandpool, cold: HttpServer, args: argparse.Namespace) -> dict[str, Any]:
    """Section 2."""
    meter, runners, boxes = CpuMeter(), {}, []
    with cold.client() as client:
        sandboxes = []
        try:
            for rt, pool in _pools(args).items():
                sandbox = Sandbox.create(pool=pool, image=SMALL_IMAGE, client=client)
                sandboxes.append(sandbox)
                boxes.append(sp.sandboxes.create(SandboxRequest(pool, SMALL_IMAGE)).id)
                argv = cold.runtime(pool).argv("exec", sandbox.id, "true")
                runners[f"raw-exec-{rt}"] = raw_exec(argv)
                runners[f"api-exec-{rt}"] = api_exec(sp, boxes[-1], meter, f"api-exec-{rt}")
                runners[f"http-exec-{rt}"] = http_exec(sandbox, meter, f"http-exec-{rt}",
                                                       cold.proc.pid)  # fmt: skip
            _log(f"exec round trip: {len(runners)} contenders x {args.n}")
            return _rows(alternate(runners, args.n, progress=_log), meter)
        finally:
            for sandbox in sandboxes:
                sandbox.terminate()
            for box in boxes:
                sp.sandboxes.terminate(box)


def oneshot(sp: Sandpool, cold: HttpServer, warm: HttpServer,
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Section 3 (``bench.http_oneshot``'s contenders: cold runs against the cold server,
    warm hits against the warm one, every sample with every warm pool full)."""
    meter = CpuMeter()
    sp.start_warm()
    with cold.client() as cold_client, warm.client() as warm_client:
        runners = http_oneshot.contenders(sp, (cold_client, cold), (warm_client, warm),
                                          list(_pools(args)), meter)  # fmt: skip
        _log(f"one-shot runs: {len(runners)} contenders x {args.n}")
        samples = alternate(runners, args.n, progress=_log)
    rows = _rows(samples, meter)
    rows["paired_ms"] = http_oneshot.paired(samples)
    rows["warm_hits"] = http_oneshot.warm_counts(sp, [warm])
    return rows


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target this run has the figures for, with its value and pass/fail."""
    out = []

    def diff(what: str, section: str, a: str, b: str, limit: float) -> None:
        rows = results.get(section, {})
        if a in rows and b in rows:
            value = round(rows[a]["p50_ms"] - rows[b]["p50_ms"], 2)
            out.append({"target": what, "value_ms": value, "limit_ms": limit,
                        "pass": value <= limit})  # fmt: skip

    for rt in ("runc", "gvisor"):
        for kind in ("cold", "warm"):
            diff(f"first command {kind} {rt}: HTTP p50 - API p50", "first_command",
                 f"http-{kind}-{rt}", f"api-{kind}-{rt}", OVERHEAD_MS)  # fmt: skip
        warm = results.get("first_command", {}).get(f"http-warm-{rt}")
        if warm:
            out.append({"target": f"first command warm {rt}: HTTP p50", "value_ms":
                        warm["p50_ms"], "limit_ms": WARM_HTTP_MS[rt],
                        "pass": warm["p50_ms"] < WARM_HTTP_MS[rt]})  # fmt: skip
        diff(f"exec {rt}: HTTP p50 - raw exec p50", "exec", f"http-exec-{rt}",
             f"raw-exec-{rt}", OVERHEAD_MS)  # fmt: skip
        for kind in ("cold", "warm"):
            diff(f"one-shot run {kind} {rt}: HTTP p50 - API p50", "oneshot",
                 f"http-{kind}-{rt}", f"api-{kind}-{rt}", OVERHEAD_MS)  # fmt: skip
    for key, row in results.items():
        if key.startswith("concurrency-"):
            ok = row["failed"] == 0 and row["ok"] == row["sandboxes"] and not row["left_in_runtime"]
            out.append({"target": f"{key}: all succeed, none left", "value_ms": None,
                        "limit_ms": None, "pass": ok})  # fmt: skip
    return out


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", type=int, default=20, help="samples per latency contender")
    parser.add_argument("--no-gvisor", action="store_true")
    parser.add_argument("--sandboxes", type=int, default=200, help="section 4: sandboxes")
    parser.add_argument("--clients", type=int, default=20, help="section 4: concurrent clients")
    parser.add_argument("--execs", type=int, default=10, help="section 4: execs per sandbox")
    parser.add_argument("--concurrency-gvisor", action="store_true",
                        help="section 4 on gVisor too")  # fmt: skip
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"a comma-separated subset of {','.join(SECTIONS)}")  # fmt: skip
    return parser.parse_args(argv)


def run_sections(ws: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    """Every chosen section against two servers and a Sandpool of this process."""
    sections, results = set(args.sections.split(",")), {}
    sp = Sandpool.from_config(str(server_config(ws, "api", WARM_SIZE)))
    cold = HttpServer(ws, server_config(ws, "cold"), "cold")
    warm = HttpServer(ws, server_config(ws, "warm", WARM_SIZE), "warm")
    runtimes = {f"{name}-{rt}": server.runtime(pool) for name, server in
                (("cold", cold), ("warm", warm)) for rt, pool in _pools(args).items()}  # fmt: skip
    try:
        if "first" in sections:
            results["first_command"] = first_command(ws, sp, cold, warm, args)
        if "exec" in sections:
            results["exec"] = exec_round_trip(sp, cold, args)
        if "oneshot" in sections:
            results["oneshot"] = oneshot(sp, cold, warm, args)
        for rt in (
            ["runc"] + ["gvisor"] * args.concurrency_gvisor if "concurrency" in sections else []
        ):
            _log(f"concurrency ({rt}): {args.sandboxes} sandboxes, {args.clients} clients")
            pool = _pools(args)[rt]
            results[f"concurrency-{rt}"] = concurrency(
                cold, runtimes[f"cold-{rt}"], pool, sandboxes=args.sandboxes,
                clients=args.clients, execs=args.execs)  # fmt: skip
    finally:
        for server in (cold, warm):
            server.close()
        runtimes |= {f"api-{rt}": sp.runtime(pool) for rt, pool in _pools(args).items()}
        sp.close()
    results["leftovers"] = {name: leftovers(ws, [rt]) for name, rt in runtimes.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections in one workspace and report."""
    args = _args(argv)
    if os.geteuid() != 0:
        _log("bench.http: needs root (containers, mounts, cgroups)")
        return 2
    fixtures.CGROUP_PARENT = f"sandpool-bench-http-{os.getpid()}"  # never another bench's
    started = time.time()
    results: dict[str, Any] = {"n": args.n, "host": {"cpus": os.cpu_count(),
                                                     "load_start": os.getloadavg()}}  # fmt: skip
    with Workspace(large_mb=1, podman=False) as ws:
        results |= run_sections(ws, args)
    results["host"]["load_end"] = os.getloadavg()
    results["elapsed_s"] = round(time.time() - started, 1)
    results["targets"] = targets(results)
    _report(results, save_results(results, "http-"))
    return 0 if all(t["pass"] for t in results["targets"]) else 1


def _report(results: dict[str, Any], path: Any) -> None:
    print(f"load average: start {results['host']['load_start']}, "
          f"end {results['host']['load_end']}; {results['elapsed_s']} s")  # fmt: skip
    print("| contender | p50 ms | p99 ms | server CPU ms/call | own CPU ms/call |")
    print("|---|---|---|---|---|")
    for section in ("first_command", "exec", "oneshot"):
        for name, row in results.get(section, {}).items():
            if "p50_ms" not in row:  # the one-shot section's paired medians and warm hits
                print(f"{name}: {json.dumps(row)}")
                continue
            print(f"| {name} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                  f"{row.get('server_cpu_ms', '-')} | {row.get('own_cpu_ms', '-')} |")  # fmt: skip
    for key, row in results.items():
        if key.startswith("concurrency-"):
            print(f"{key}: {json.dumps(row)}")
    for t in results["targets"]:
        value = "" if t["value_ms"] is None else f": {t['value_ms']} ms (limit {t['limit_ms']})"
        print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']}{value}")
    _log(f"results: {path}; leftovers: {json.dumps(results['leftovers'])}")


if __name__ == "__main__":
    sys.exit(main())
