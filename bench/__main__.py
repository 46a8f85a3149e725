"""sandpool benchmarks (issue 8): ``.venv/bin/python -m bench [-n N] [--large-mb MB] ...``.

Runs as root on a host with runc, runsc and podman; never part of the test suite. Prints a
table and writes ``bench/results/<timestamp>.json`` (and ``latest.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import contenders as c
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.measure import alternate, summary, throughput
from bench.report import RESULTS, print_report, save_results, targets
from sandpool.api import Sandpool


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="samples per latency contender")
    parser.add_argument("--large-mb", type=int, default=500, help="size of the large image")
    parser.add_argument("--throughput-per-k", type=int, default=10,
                        help="containers per thread in each throughput round")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per K")
    parser.add_argument("--no-podman", action="store_true")
    parser.add_argument("--no-gvisor", action="store_true")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def latency(ws: Workspace, sp: Sandpool, args: argparse.Namespace) -> dict[str, Any]:
    """Section 1: warm API, cold CLI, raw runtimes and podman, alternating."""
    image = ws.small_image()
    runners: dict[str, c.Contender] = {
        "raw-runc": c.raw(ws.raw_bundles(sp.runtime(RUNC_POOL), image, 1)),
        "api-runc": c.api(sp, RUNC_POOL, SMALL_IMAGE),
        "cli-runc": c.cli(ws.config_path, RUNC_POOL, SMALL_IMAGE, ws.no_server_socket),
        "served-runc": c.cli(ws.config_path, RUNC_POOL, SMALL_IMAGE, ws.start_server()),
    }
    if not args.no_gvisor:
        runners["raw-runsc"] = c.raw(ws.raw_bundles(sp.runtime(RUNSC_POOL), image, 1))
        runners["api-runsc"] = c.api(sp, RUNSC_POOL, SMALL_IMAGE)
        runners["cli-runsc"] = c.cli(ws.config_path, RUNSC_POOL, SMALL_IMAGE,
                                     ws.no_server_socket)  # fmt: skip
        runners["served-runsc"] = c.cli(ws.config_path, RUNSC_POOL, SMALL_IMAGE,
                                        ws.start_server())  # fmt: skip
    if not args.no_podman:
        ws.import_podman_image(image)
        runners["podman"] = c.podman(ws)
    _log(f"latency: {len(runners)} contenders x {args.n}")
    samples = alternate(runners, args.n, progress=_log)
    return {name: summary(s) for name, s in samples.items()}


def throughput_section(ws: Workspace, sp: Sandpool, args: argparse.Namespace) -> dict[str, Any]:
    """Section 2: containers/s with K threads, API vs raw runc, alternating per round."""
    image = ws.small_image()
    runners = {"api-runc": c.api(sp, RUNC_POOL, SMALL_IMAGE),
               "raw-runc": c.raw(ws.raw_bundles(sp.runtime(RUNC_POOL), image, 8))}  # fmt: skip
    out: dict[str, Any] = {}
    for k in (1, 2, 4, 8):
        rates: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                rates[name].append(throughput(run, k, k * args.throughput_per_k))
        out[str(k)] = {name: round(statistics.median(r), 2) for name, r in rates.items()}
        out[str(k)]["ratio"] = round(out[str(k)]["api-runc"] / out[str(k)]["raw-runc"], 3)
        _log(f"throughput K={k}: {out[str(k)]}")
    return out


def image_size(ws: Workspace, sp: Sandpool, args: argparse.Namespace) -> dict[str, Any]:
    """Section 3: the same API run with a ~2 MB and a ~large_mb MB image, alternating."""
    _log(f"image size: building a {args.large_mb} MB image")
    large = ws.make_large_image()
    runners = {"small-runc": c.api(sp, RUNC_POOL, SMALL_IMAGE),
               "large-runc": c.api(sp, RUNC_POOL, large)}  # fmt: skip
    if not args.no_gvisor:
        runners["small-runsc"] = c.api(sp, RUNSC_POOL, SMALL_IMAGE)
        runners["large-runsc"] = c.api(sp, RUNSC_POOL, large)
    samples = alternate(runners, args.n, progress=_log)
    sizes = {img.reference: img.size_bytes for img in ws.store().list()}
    return {"sizes_bytes": sizes, **{name: summary(s) for name, s in samples.items()}}


def memory(ws: Workspace) -> dict[str, Any]:
    """Section 4: peak RSS of one ``sandpool run`` (in-process, served), of an idle process
    holding a Sandpool, and of the warm ``sandpool serve``."""

    def peak(socket: Path) -> int:
        return max(c.cli_peak_rss_kb(ws.config_path, RUNC_POOL, SMALL_IMAGE, socket)
                   for _ in range(5))  # fmt: skip

    idle = c.idle_rss_kb(ws.config_path, RUNC_POOL, SMALL_IMAGE)
    served = peak(ws.start_server())
    server = ws.server_memory_kb()  # after every served run of the latency section and these
    return {"cli_peak_rss_kb": peak(ws.no_server_socket), "served_client_peak_rss_kb": served,
            "idle_rss_kb": idle["VmRSS"], "idle_hwm_kb": idle["VmHWM"],
            "server_rss_kb": server["VmRSS"], "server_hwm_kb": server["VmHWM"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run every section in one workspace and report."""
    args = _args(argv)
    if os.geteuid() != 0:
        _log("bench: needs root (containers, mounts, cgroups)")
        return 2
    started = time.time()
    results: dict[str, Any] = {
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version()},
        "n": args.n,
    }  # fmt: skip
    with Workspace(large_mb=args.large_mb, podman=not args.no_podman) as ws:
        sp = Sandpool.from_config(str(ws.config_path))
        ws.small_image()
        results["latency"] = latency(ws, sp, args)
        results["throughput"] = throughput_section(ws, sp, args)
        results["image_size"] = image_size(ws, sp, args)
        results["memory"] = memory(ws)
        runtimes = [sp.runtime(p) for p in sp.config.pools]
        sp.close()  # its warm cgroups and disks are kept for reuse, not leaked
        results["leftovers"] = leftovers(ws, runtimes)
    results["elapsed_s"] = round(time.time() - started, 1)
    results["targets"] = targets(results)
    _write(results)
    print_report(results)
    return 0 if all(t["pass"] for t in results["targets"]) else 1


def _write(results: dict[str, Any]) -> None:
    path = save_results(results)
    (RESULTS / "latest.json").write_text(path.read_text())
    _log(f"results: {path}")


if __name__ == "__main__":
    sys.exit(main())
