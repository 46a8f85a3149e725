"""Start-latency cost of network policies (issue 19): ``.venv/bin/python -m bench.network [-n N]``.

For each runtime (runc, gVisor ptrace) and each mode (``none``, ``allow`` with a CIDR and a
domain, ``open``), alternating every iteration:

- ``run``: ``Sandpool.run`` of ``true``, its ``startLatencyMs`` (the runtime's pid file
  written) and its whole wall time (set-up, run, teardown of namespace, veth, table, DNS);
- ``create``: ``SandboxManager.create`` until the sandbox runs (cold: no warm pool), its
  wall time; the terminate after it is not timed.

No packet leaves the machine: the containers run ``true`` (runs) or nothing (sandboxes).
Runs as root; never part of the test suite. Prints a table (p50 and the cost over ``none``)
and writes ``bench/results/network-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from functools import partial
from typing import Any

from bench import fixtures
from bench.contenders import Contender
from bench.fixtures import RUNC_POOL, RUNSC_POOL, SMALL_IMAGE, Workspace, leftovers
from bench.measure import alternate, summary
from bench.report import save_results
from sandpool.api import Sandpool
from sandpool.sandbox import SandboxRequest
from sandpool.worker.ownership import owner_tag

MODES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "none": ("none", None),
    "allow": ("allow", ("192.0.2.0/24", "example.test")),  # TEST-NET-1: never reached
    "open": ("open", None),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _network_config(ws: Workspace) -> None:
    """The workspace's config with a ``worker.network`` of the bench's own (a /24 that the
    tests' 10.213.0.0/16 ranges do not use; no global ip_forward change)."""
    n = os.getpid() % 250
    text = ws.config_path.read_text().replace(
        "  pools:\n", f"  network:\n    addressRange: 10.212.{n}.0/24\n    ipForward: false\n"
        "  pools:\n", 1)  # fmt: skip
    ws.config_path.write_text(text)


def measure(sp: Sandpool, pools: list[str], n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every contender's samples: wall times, and the runs' start latencies."""
    starts: dict[str, list[float]] = {}
    contenders: dict[str, Contender] = {}
    for pool in pools:
        runtime = sp.runtime(pool).name
        for mode, (network, allow) in MODES.items():
            key = f"{runtime}-{mode}"
            starts[f"run-start-{key}"] = []
            contenders[f"run-{key}"] = partial(_run, sp, pool, network, allow,
                                               starts[f"run-start-{key}"])  # fmt: skip
            contenders[f"create-{key}"] = partial(_create, sp, pool, network, allow)
    samples = alternate(contenders, n, warmup=1, progress=_log)
    timed = {name: summary(values) for name, values in samples.items()}
    started = {name: summary(values[-n:]) for name, values in starts.items() if values}
    return timed, started


def _run(sp: Sandpool, pool: str, network: str, allow: tuple[str, ...] | None,
         starts: list[float]) -> float:  # fmt: skip
    begin = time.perf_counter()
    result = sp.run(pool, ["true"], image=SMALL_IMAGE, network=network, allow=allow)
    elapsed = time.perf_counter() - begin
    if result.exit_code != 0:
        raise RuntimeError(f"run failed: {result.error}")
    starts.append((result.start_latency_ms or 0.0) / 1000)
    return elapsed


def _create(sp: Sandpool, pool: str, network: str, allow: tuple[str, ...] | None) -> float:
    begin = time.perf_counter()
    info = sp.sandboxes.create(SandboxRequest(pool, SMALL_IMAGE, network=network, allow=allow))
    elapsed = time.perf_counter() - begin
    sp.sandboxes.terminate(info.id)
    return elapsed


def _network_leftovers(ws: Workspace) -> list[str]:
    """The bench's namespaces and nftables tables still there (should be none)."""
    tag = owner_tag(ws.root / "state")
    listed = [subprocess.run(argv, capture_output=True, text=True, check=False).stdout
              for argv in (["ip", "netns", "list"], ["nft", "list", "tables"])]  # fmt: skip
    return [line for text in listed for line in text.splitlines() if tag in line.replace("_", "-")]


def main(argv: list[str] | None = None) -> int:
    """Measure, report, leave nothing."""
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__)
    parser.add_argument("-n", type=int, default=10, help="samples per contender")
    parser.add_argument("--no-gvisor", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("bench: needs root (containers, namespaces, nftables)")
        return 2
    pools = [RUNC_POOL] + ([] if args.no_gvisor else [RUNSC_POOL])
    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}}
    fixtures.CGROUP_PARENT = f"sandpool-bench-network-{os.getpid()}"
    with Workspace(large_mb=1, podman=False) as ws:
        _network_config(ws)
        sp = Sandpool.from_config(str(ws.config_path))
        ws.small_image()
        results["wall"], results["start"] = measure(sp, pools, args.n)
        runtimes = [sp.runtime(p) for p in pools]
        sp.close()
        results["leftovers"] = leftovers(ws, runtimes)
        results["leftovers"]["network"] = _network_leftovers(ws)
    _report(results)
    return 0


def _report(results: dict[str, Any]) -> None:
    save_results(results, "network-")
    rows = {**results["wall"], **results["start"]}
    for name, row in rows.items():
        base = rows.get(name.rsplit("-", 1)[0] + "-none")
        cost = f"{row['p50_ms'] - base['p50_ms']:+7.1f} ms" if base else ""
        print(f"{name:<28} p50 {row['p50_ms']:>8.1f} ms  p95 {row['p95_ms']:>8.1f} ms  {cost}")
    print(f"leftovers: {results['leftovers']}")


if __name__ == "__main__":
    sys.exit(main())
