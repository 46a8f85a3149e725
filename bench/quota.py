"""What one tenant-quota admission costs (issue 17): ``.venv/bin/python -m bench.quota [-n N]``
(redis-server on a unix socket of its own; no root, no containers).

Admit + release, alternating, with the embedded server's in-process ``QuotaLedger`` and a
gateway's ``RedisQuotas`` (one Lua script each way), side by side in the same run; and the
reconcile pass over ``--leases`` open leases (every gateway runs one each second).
Prints a table and writes ``bench/results/quota-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.integration.dispatch.redis_server import RedisServer

from bench.measure import summary
from bench.report import save_results
from sandpool.dispatch.broker import Broker
from sandpool.dispatch.redis_quotas import RedisQuotas
from sandpool.service.quotas import Quota, QuotaLedger, TenantQuotas

QUOTA = Quota(concurrent=1_000_000, cpu=1_000_000.0, memory=2**60, creates_per_second=1e6)


def _admit_release(quotas: TenantQuotas) -> float:
    start = time.perf_counter()
    quotas.admit("bench", QUOTA, 1.0, 2**29).release()
    return time.perf_counter() - start


def run(n: int, leases: int) -> dict[str, Any]:
    """Admit+release latencies of both, and one reconcile over ``leases`` leases."""
    with tempfile.TemporaryDirectory() as redis_dir:
        server = RedisServer(Path(redis_dir))
        try:
            redis_quotas = RedisQuotas(Broker.connect(server.url))
            ledger = QuotaLedger()
            samples: dict[str, list[float]] = {"ledger": [], "redis": []}
            for _ in range(n):
                samples["ledger"].append(_admit_release(ledger))
                samples["redis"].append(_admit_release(redis_quotas))
            for _ in range(leases):
                redis_quotas.admit("bench", QUOTA, 0.1, 1)
            start = time.perf_counter()
            redis_quotas.reconcile()
            reconcile_ms = round((time.perf_counter() - start) * 1000, 2)
        finally:
            server.stop()
    return {"admit_release": {k: summary(v) for k, v in samples.items()},
            "reconcile_ms": {"leases": leases, "ms": reconcile_ms}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="admissions per contender")
    parser.add_argument("--leases", type=int, default=1000, help="open leases to reconcile")
    args = parser.parse_args()
    results = run(args.n, args.leases)
    for name, row in results["admit_release"].items():
        print(f"admit+release {name:7} p50 {row['p50_ms']:7.3f} ms  p95 {row['p95_ms']:7.3f} ms")
    rec = results["reconcile_ms"]
    print(f"reconcile over {rec['leases']} open leases: {rec['ms']} ms")
    print(f"results: {save_results(results, 'quota-')}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
