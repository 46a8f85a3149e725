"""Section 3 of ``bench.http``: ``sandboxes`` sandboxes created by ``clients`` concurrent SDK
clients (one thread and one ``Client`` each), every sandbox running ``execs`` execs of
``true`` and a file round trip (write 4 KiB, read it back, compare), then terminated.

Reports creates/s (sandboxes over the wall time of the whole section), create and exec
p50/p99, failures (the first few named) and what the server's runtime still holds after the
last terminate (must be nothing: the server runs no warm pool)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from bench.fixtures import SMALL_IMAGE
from bench.http_server import HttpServer
from bench.measure import percentile
from sandpool.client import Sandbox
from sandpool.runtime.base import ContainerRuntime

__all__ = ["concurrency"]

PAYLOAD = 4096


class _Tally:
    """What the clients measured, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.creates: list[float] = []
        self.execs: list[float] = []
        self.failures: list[str] = []
        self.done = 0

    def add(self, create: float, execs: list[float]) -> None:
        with self.lock:
            self.creates.append(create)
            self.execs.extend(execs)
            self.done += 1

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.failures.append(f"{type(error).__name__}: {error}")


def _one_sandbox(server: HttpServer, client: Any, pool: str, execs: int, tally: _Tally) -> None:
    start = time.perf_counter()
    sandbox = Sandbox.create(pool=pool, image=SMALL_IMAGE, client=client)
    created = time.perf_counter() - start
    try:
        times = []
        for _ in range(execs):
            begin = time.perf_counter()
            code = sandbox.exec(["true"]).exit_code
            times.append(time.perf_counter() - begin)
            if code != 0:
                raise RuntimeError(f"exec in {sandbox.id} exited {code}")
        data = os.urandom(PAYLOAD)
        sandbox.files.write("/tmp/round-trip.bin", data)
        if sandbox.files.read("/tmp/round-trip.bin") != data:
            raise RuntimeError(f"the file read back from {sandbox.id} differs")
    finally:
        sandbox.terminate()
    tally.add(created, times)


def concurrency(server: HttpServer, runtime: ContainerRuntime, pool: str, *, sandboxes: int,
                clients: int, execs: int) -> dict[str, Any]:  # fmt: skip
    """Run the section on ``pool`` of ``server``; its figures."""
    tally, counter = _Tally(), iter(range(sandboxes))
    take = threading.Lock()

    def client_thread() -> None:
        with server.client() as client:
            while True:
                with take:
                    if next(counter, None) is None:
                        return
                try:
                    _one_sandbox(server, client, pool, execs, tally)
                except Exception as error:  # counted and reported
                    tally.fail(error)

    threads = [threading.Thread(target=client_thread) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    create_ms, exec_ms = ([s * 1000 for s in xs] for xs in (tally.creates, tally.execs))
    return {
        "sandboxes": sandboxes, "clients": clients, "execs_each": execs,
        "ok": tally.done, "failed": len(tally.failures), "failures": tally.failures[:5],
        "wall_s": round(wall, 2), "creates_per_s": round(tally.done / wall, 2),
        "create_p50_ms": _p(create_ms, 0.5), "create_p99_ms": _p(create_ms, 0.99),
        "exec_p50_ms": _p(exec_ms, 0.5), "exec_p99_ms": _p(exec_ms, 0.99),
        "left_in_runtime": [s.id for s in runtime.list()],
    }  # fmt: skip


def _p(samples: list[float], q: float) -> float | None:
    return round(percentile(samples, q), 1) if samples else None
