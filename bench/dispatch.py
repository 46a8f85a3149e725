"""The gateway → worker hop and the dispatch's throughput (issue 17):
``.venv/bin/python -m bench.dispatch [-n N] [--requests M]`` (root, runc, redis-server).

- ``hop``: one runc sandbox on a real worker process; an ``echo`` exec round trip sent
  through the gateway's proxy vs. straight to the worker's endpoint, alternating; the hop is
  the difference of the p50s. Time to first command (create + first exec) through the
  gateway.
- ``throughput``: requests placed and acknowledged per second through Redis (the broker's
  scripts, no containers) with 1 and 3 workers pulling and acknowledging in threads, as fast
  as they can, with 1 submitting process and with ``--submitters`` processes (each its own
  connection, as several gateways would be), so that 3 workers are not bounded by one.
- ``public``: the SDK through a gateway + runc worker vs. the single-process server, same
  run (``bench/dispatch_public.py``): time to first command and exec round trip.

Prints a table and writes ``bench/results/dispatch-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import AUTH, Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import RedisServer

from bench.dispatch_public import public_api
from bench.measure import summary
from bench.report import save_results
from sandpool.dispatch.broker import Broker
from sandpool.dispatch.models import Demand, Resources, WorkerSpec


def _exec(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    answer = client.post(url, json={"argv": ["echo", "hi"]}, headers=AUTH)
    lines = [json.loads(x) for x in answer.text.splitlines()]
    out = b"".join(base64.b64decode(x["data"]) for x in lines if x["type"] == "stdout")
    assert out == b"hi\n" and lines[-1].get("exitCode") == 0, answer.text
    return time.perf_counter() - start


def _get(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    answer = client.get(url, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - start


def hop(n: int) -> dict[str, Any]:
    """Exec round trips via the gateway and direct, and time to first command."""
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        gateway = Gateway(box_of(base, "gw"), redis.url)
        box = box_of(base, "w")
        worker = Worker(box, "performance", gateway.url)
        worker.registered()
        try:
            return _hop_samples(gateway, worker, n)
        finally:
            worker.stop()
            gateway.stop()
            redis.stop()
            box.remove_parent_cgroups()


def _hop_samples(gateway: Gateway, worker: Worker, n: int) -> dict[str, Any]:
    first = []
    for _ in range(max(3, n // 10)):
        start = time.perf_counter()
        made = gateway.create("performance").json()["sandbox"]["id"]
        gateway.exec(made, "true")
        first.append(time.perf_counter() - start)
        gateway.client.delete(f"/sandboxes/{made}")
    sandbox = gateway.create("performance").json()["sandbox"]["id"]
    path = f"/internal/v1/sandboxes/{sandbox}/exec"
    info = f"/internal/v1/sandboxes/{sandbox}"
    samples: dict[str, list[float]] = {
        k: [] for k in ("exec_via_gateway", "exec_direct", "info_via_gateway", "info_direct")
    }
    with httpx.Client(timeout=60) as client:
        for _ in range(3):  # warm both connections
            _exec(client, gateway.url + path), _exec(client, worker.address + path)
        for _ in range(n):
            samples["exec_via_gateway"].append(_exec(client, gateway.url + path))
            samples["exec_direct"].append(_exec(client, worker.address + path))
            samples["info_via_gateway"].append(_get(client, gateway.url + info))
            samples["info_direct"].append(_get(client, worker.address + info))
    gateway.client.delete(f"/sandboxes/{sandbox}")
    result: dict[str, Any] = {k: summary(v) for k, v in samples.items()}
    result["first_command_via_gateway"] = summary(first)
    for what in ("exec", "info"):
        result[f"hop_{what}_p50_ms"] = round(result[f"{what}_via_gateway"]["p50_ms"]
                                             - result[f"{what}_direct"]["p50_ms"], 2)  # fmt: skip
    return result


def _fake_worker(broker: Broker, worker_id: str, stop: threading.Event) -> None:
    while not stop.is_set():
        for delivery in broker.pull(worker_id, 64, 0.05, recover=False):
            broker.ack(worker_id, delivery, {"ok": True}, sandbox_id=delivery.request_id,
                       address="http://x", pool="p")  # fmt: skip
            broker.release(worker_id, delivery.request_id, "terminated", "killed")


def throughput(workers: int, requests: int, submitters: int = 1) -> dict[str, Any]:
    """Requests placed and acknowledged per second with ``workers`` fake workers and
    ``submitters`` threads submitting (and placing) at once."""
    with tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        try:
            broker = Broker.connect(redis.url)
            spec = WorkerSpec("p", "http://x", Resources(10**9, 10**15, 0, 10**6))
            ids = [f"w{i}" for i in range(workers)]
            for worker_id in ids:
                broker.register(worker_id, spec)
            stop = threading.Event()
            threads = [
                threading.Thread(target=_fake_worker, args=(Broker.connect(redis.url), w, stop))
                for w in ids
            ]
            for t in threads:
                t.start()
            submit = _Submitters(redis.url, submitters)
            start = time.perf_counter()
            rids = submit.run(requests)
            for rid in rids:
                assert broker.outcome(rid, 30) is not None
            elapsed = time.perf_counter() - start
            submit.close()
            stop.set()
            for t in threads:
                t.join()
            return {"workers": workers, "submitters": submitters, "requests": len(rids),
                    "seconds": round(elapsed, 3),
                    "per_second": round(len(rids) / elapsed, 1)}  # fmt: skip
        finally:
            redis.stop()


def _warm(_: int) -> None:
    time.sleep(0.3)  # held long enough that every process of the pool gets one


def _submit_part(redis_url: str, requests: int) -> list[str]:
    return _submit_all(Broker.connect(redis_url), requests)


class _Submitters:
    """``submitters`` processes (as several gateways would be; threads of one Python process
    would share its GIL), started before the clock; ``run`` splits the requests over them."""

    def __init__(self, redis_url: str, submitters: int) -> None:
        self.redis_url, self.count = redis_url, submitters
        self.pool = ProcessPoolExecutor(submitters, mp_context=get_context("spawn"))
        list(self.pool.map(_warm, range(submitters)))

    def run(self, requests: int) -> list[str]:
        parts = [requests // self.count] * self.count
        found = self.pool.map(_submit_part, [self.redis_url] * self.count, parts)
        return [rid for part in found for rid in part]

    def close(self) -> None:
        self.pool.shutdown()


def _submit_all(broker: Broker, requests: int) -> list[str]:
    need = Demand("p", Resources(1000, 1 << 29, 0, 1))
    rids = []
    for _ in range(requests):
        rid = uuid.uuid4().hex
        broker.submit(rid, need, {})
        broker.place(64)
        rids.append(rid)
    while broker.place(256):
        pass
    return rids


def _print_public(p: dict[str, Any]) -> None:
    for what in ("first_command", "exec"):
        for side in ("single", "gateway"):
            row = p[f"{what}_{side}"]
            print(
                f"SDK {what} ({side}):{'':<{24 - len(what) - len(side)}} "
                f"p50 {row['p50_ms']:>8.2f} ms  p95 {row['p95_ms']:>8.2f} ms"
            )
        print(f"SDK {what}: gateway p50 - single-process p50 = {p[f'{what}_hop_p50_ms']} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__)
    parser.add_argument("-n", type=int, default=100, help="exec samples per path")
    parser.add_argument("--requests", type=int, default=2000, help="requests per throughput run")
    parser.add_argument("--submitters", type=int, default=4, help="submitting processes")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"hop": hop(args.n), "public": public_api(args.n)}
    results["throughput"] = [throughput(k, args.requests, s)
                             for s in sorted({1, args.submitters}) for k in (1, 3)]  # fmt: skip
    path = save_results(results, "dispatch-")
    h = results["hop"]
    for name in (
        "exec_direct",
        "exec_via_gateway",
        "info_direct",
        "info_via_gateway",
        "first_command_via_gateway",
    ):
        print(f"{name:<28} p50 {h[name]['p50_ms']:>8.2f} ms  p95 {h[name]['p95_ms']:>8.2f} ms")
    for what in ("exec", "info"):
        print(
            f"hop, {what} (p50 via gateway - p50 direct): {h[f'hop_{what}_p50_ms']} ms "
            "(target <= 5 ms)"
        )
    _print_public(results["public"])
    for row in results["throughput"]:
        print(f"dispatch throughput, {row['workers']} worker(s), {row['submitters']} "
              f"submitter(s): {row['per_second']} requests/s")  # fmt: skip
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
