"""Sandbox benchmarks (issue 15): ``.venv/bin/python -m bench.sandboxes [-n N] [-k K] [-m M]``.

1. ``exec`` of ``true`` in a running sandbox through the Python API against the runtime's
   own ``runc exec`` / ``runsc exec`` of ``true`` in the same container, alternating with a
   1 KiB file write and read through the API.
2. Time to first command: create + exec ``true`` through the API against a raw ``run`` of
   ``true`` from a prepared bundle (``bench.fixtures.RawBundle``).
3. K sandboxes at once per runtime, each doing M execs from its own thread: failures, exec
   p50/p99, and memory per idle sandbox (PSS of its processes, and its cgroup's usage).

Runs as root; never part of the test suite. Prints a table and writes
``bench/results/sandboxes-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
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
from bench.measure import alternate, percentile, summary
from bench.report import save_results
from sandpool.api import Sandpool
from sandpool.sandbox import SandboxRequest
from sandpool.worker.cgroups import CGROUP_ROOT
from sandpool.worker.records import ContainerRecord, containers_dir


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def exec_latency(ws: Workspace, sp: Sandpool, pools: list[str], n: int) -> dict[str, Any]:
    """Section 1."""
    runners: dict[str, c.Contender] = {}
    boxes = []
    for pool in pools:
        box = sp.sandboxes.create(SandboxRequest(pool, SMALL_IMAGE)).id
        boxes.append(box)
        runtime = sp.runtime(pool)
        raw_argv = runtime.argv("exec", box, "true")
        runners[f"raw-exec-{runtime.name}"] = lambda argv=raw_argv: c._timed(argv)
        runners[f"api-exec-{runtime.name}"] = lambda box=box: timers.exec_true(sp, box)
        runners[f"api-write-1k-{runtime.name}"] = lambda box=box: _write(sp, box)
        runners[f"api-read-1k-{runtime.name}"] = lambda box=box: _read(sp, box)
    samples = alternate(runners, n, progress=_log)
    for box in boxes:
        sp.sandboxes.terminate(box)
    return {name: summary(s) | {"p99_ms": _p99(s)} for name, s in samples.items()}


def _write(sp: Sandpool, box: str) -> float:
    start = time.perf_counter()
    sp.sandboxes.write_file(box, "/tmp/bench", b"x" * 1024)
    return time.perf_counter() - start


def _read(sp: Sandpool, box: str) -> float:
    start = time.perf_counter()
    data = b"".join(sp.sandboxes.read_file(box, "/tmp/bench"))
    elapsed = time.perf_counter() - start
    if len(data) != 1024:
        raise RuntimeError(f"read {len(data)} bytes")
    return elapsed


def _p99(samples: list[float]) -> float:
    return round(percentile([s * 1000 for s in samples], 0.99), 2)


def first_command(ws: Workspace, sp: Sandpool, pools: list[str], n: int) -> dict[str, Any]:
    """Section 2."""
    image = ws.small_image()
    runners: dict[str, c.Contender] = {}
    for pool in pools:
        runtime = sp.runtime(pool)
        runners[f"raw-run-{runtime.name}"] = c.raw(ws.raw_bundles(runtime, image, 1))
        runners[f"api-create+exec-{runtime.name}"] = lambda pool=pool: (
            timers.first_command(sp, pool).elapsed
        )
    samples = alternate(runners, n, progress=_log)
    return {name: summary(s) | {"p99_ms": _p99(s)} for name, s in samples.items()}


def many(sp: Sandpool, pool: str, k: int, m: int) -> dict[str, Any]:
    """Section 3, for one pool."""
    request = SandboxRequest(pool, SMALL_IMAGE)
    with ThreadPoolExecutor(8) as pool_exec:
        boxes = list(pool_exec.map(lambda _: sp.sandboxes.create(request).id, range(k)))
    time.sleep(2)
    memory = _memory(sp, boxes)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(box: str) -> None:
        for _ in range(m):
            try:
                elapsed = timers.exec_true(sp, box)
                with lock:
                    latencies.append(elapsed)
            except Exception as exc:
                with lock:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(b,)) for b in boxes]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    with ThreadPoolExecutor(8) as pool_exec:
        list(pool_exec.map(sp.sandboxes.terminate, boxes))
    ms = [s * 1000 for s in latencies]
    return {"sandboxes": k, "execs_each": m, "ok": len(latencies), "failures": failures[:5],
            "failed": len(failures), "exec_p50_ms": round(percentile(ms, 0.5), 1),
            "exec_p99_ms": round(percentile(ms, 0.99), 1), "wall_s": round(wall, 1),
            "execs_per_s": round(len(latencies) / wall, 1), **memory}  # fmt: skip


def _memory(sp: Sandpool, boxes: list[str]) -> dict[str, Any]:
    """Per idle sandbox: PSS of the processes in its cgroup, and the cgroup's usage."""
    pss, usage = [], []
    for box in boxes:
        record = ContainerRecord.load(containers_dir(Path(sp.config.state_dir)) / box)
        if record is None:
            continue
        memory = CGROUP_ROOT / "memory" / record.cgroup_parent
        pids = set()
        for procs in (memory / "cgroup.procs", memory / "ctr" / "cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(procs.read_text().split())
        pss.append(sum(_pss_kb(pid) for pid in pids))
        with contextlib.suppress(OSError, ValueError):
            usage.append(int((memory / "memory.usage_in_bytes").read_text()) // 1024)
    mean = lambda xs: round(sum(xs) / len(xs) / 1024, 1) if xs else None  # noqa: E731
    return {"idle_pss_mb_mean": mean(pss), "idle_cgroup_usage_mb_mean": mean(usage)}


def _pss_kb(pid: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run every section in one workspace and report."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandboxes", description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="samples per latency contender")
    parser.add_argument("-k", type=int, default=50, help="concurrent sandboxes per runtime")
    parser.add_argument("-m", type=int, default=20, help="execs per sandbox")
    parser.add_argument("--no-gvisor", action="store_true")
    parser.add_argument("--exec-only", action="store_true", help="only section 1")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench: needs root (containers, mounts, cgroups)")
        return 2
    pools = [RUNC_POOL] + ([] if args.no_gvisor else [RUNSC_POOL])
    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(),
                                        "load": os.getloadavg()[0]}}  # fmt: skip
    # A cgroup parent of this run's own: the main bench's shared one may be in use right now,
    # and its clean-up removes every empty cgroup under it.
    fixtures.CGROUP_PARENT = f"sandpool-bench-sandboxes-{os.getpid()}"
    with Workspace(large_mb=1, podman=False) as ws:
        sp = Sandpool.from_config(str(ws.config_path))
        ws.small_image()
        _log("exec latency")
        results["exec"] = exec_latency(ws, sp, pools, args.n)
        if not args.exec_only:
            _log("time to first command")
            results["first_command"] = first_command(ws, sp, pools, max(5, args.n // 2))
        for pool in [] if args.exec_only else pools:
            _log(f"{args.k} sandboxes x {args.m} execs ({pool})")
            results[f"many-{sp.runtime(pool).name}"] = many(sp, pool, args.k, args.m)
        runtimes = [sp.runtime(p) for p in pools]
        sp.close()
        results["leftovers"] = leftovers(ws, runtimes)
    _report(results)
    return 0


def _report(results: dict[str, Any]) -> None:
    save_results(results, "sandboxes-")
    for section in ("exec", "first_command"):
        for name, row in results.get(section, {}).items():
            print(f"{name:<28} p50 {row['p50_ms']:>8.1f} ms  p99 {row['p99_ms']:>8.1f} ms")
    for runtime in ("runc", "gvisor"):
        raw, api = (results["exec"].get(f"{k}-exec-{runtime}") for k in ("raw", "api"))
        if raw and api:
            print(f"exec ratio {runtime}: {api['p50_ms'] / raw['p50_ms']:.2f}x (p50)")
    for key, row in results.items():
        if key.startswith("many-"):
            print(f"{key}: {json.dumps(row)}")
    print(f"leftovers: {results['leftovers']}")


if __name__ == "__main__":
    sys.exit(main())
