"""Sandbox contenders of ``bench.http``: time to first command and the exec round trip, each
through the SDK over HTTP (``sandpool.client.Sandbox``), through the Python API in this
process (``Sandpool.sandboxes``) and through the raw runtime.

What each timer holds:

- ``*-first-*``: create + exec ``true`` + its exit code; the terminate comes after the timer.
  ``http-warm-*`` / ``api-warm-*`` wait (outside the timer) until every warm pool of the
  bench, the server's and this process's, is full again (``settle``: no refill of an earlier
  sample runs beside the timed one, on either side), and count as a sample only if the create
  was a warm hit (the id was one of the warm ones; the Python API's claim counter), else the
  sample is taken again.
- ``raw-run-*``: ``runc run`` / ``runsc run`` of ``true`` on a prepared bundle
  (``bench.contenders.raw``).
- ``http-exec-*``: ``Sandbox.exec(["true"])`` (start, then the output stream to the exit
  event: two requests) in a sandbox of the server; ``api-exec-*``: ``Sandpool.sandboxes.exec``
  in one of this process; ``raw-exec-*``: ``runc exec`` / ``runsc exec`` of ``true`` in the
  server's sandbox, the same container the HTTP contender uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import contenders as c
from bench.api_timers import exec_true, first_command
from bench.fixtures import SMALL_IMAGE
from bench.http_server import CpuMeter, HttpServer
from sandpool.api import Sandpool
from sandpool.client import Client, Sandbox

__all__ = ["api_exec", "api_first", "http_exec", "http_first", "raw_exec"]

RETRIES = 5  # a warm sample that missed (the pool refilled a moment late) is taken again


Settle = Callable[[], None]


def http_first(client: Client, server: HttpServer, pool: str, meter: CpuMeter, name: str,
               warm_size: int = 0, settle: Settle | None = None) -> c.Contender:  # fmt: skip
    """Create + exec ``true`` through the SDK; with ``warm_size``, only warm hits count."""

    def once() -> tuple[float, bool]:
        if settle is not None:
            settle()
        warm = server.wait_warm(pool, warm_size) if warm_size else set()
        with meter.span(name, server.proc.pid):
            start = time.perf_counter()
            sandbox = Sandbox.create(pool=pool, image=SMALL_IMAGE, client=client)
            code = sandbox.exec(["true"]).exit_code
            elapsed = time.perf_counter() - start
        sandbox.terminate()  # outside the timer
        if code != 0:
            raise RuntimeError(f"the first exec over HTTP exited {code}")
        return elapsed, not warm_size or sandbox.id in warm

    return _hits_only(once, name)


def api_first(sp: Sandpool, pool: str, meter: CpuMeter, name: str, warm: bool = False,
              settle: Settle | None = None) -> c.Contender:  # fmt: skip
    """Create + exec ``true`` through the Python API; with ``warm``, only warm hits count."""

    def claims() -> int:
        return sum(s.claims for s in sp.sandboxes.warm_stats() if s.pool == pool)

    def once() -> tuple[float, bool]:
        if settle is not None:
            settle()
        if warm and not sp.sandboxes.wait_warm(120):  # outside the timer: the pool is full
            raise RuntimeError(f"warm pool {pool} did not fill: {sp.sandboxes.warm_stats()}")
        before = claims() if warm else 0
        elapsed = first_command(sp, pool, meter.span(name, None)).elapsed
        return elapsed, not warm or claims() == before + 1

    return _hits_only(once, name)


def _hits_only(once: Callable[[], tuple[float, bool]], name: str) -> c.Contender:
    def run() -> float:
        for _ in range(RETRIES):
            elapsed, hit = once()
            if hit:
                return elapsed
        raise RuntimeError(f"{name}: {RETRIES} warm misses in a row")

    return run


def http_exec(sandbox: Sandbox, meter: CpuMeter, name: str, server_pid: int) -> c.Contender:
    """``exec(["true"])`` through the SDK in a running sandbox of the server."""

    def run() -> float:
        with meter.span(name, server_pid):
            start = time.perf_counter()
            code = sandbox.exec(["true"]).exit_code
            elapsed = time.perf_counter() - start
        if code != 0:
            raise RuntimeError(f"exec over HTTP exited {code}")
        return elapsed

    return run


def api_exec(sp: Sandpool, box: str, meter: CpuMeter, name: str) -> c.Contender:
    """``Sandpool.sandboxes.exec`` of ``true`` in a running sandbox of this process."""

    return lambda: exec_true(sp, box, meter.span(name, None))


def raw_exec(argv: list[str]) -> c.Contender:
    """The runtime's own ``exec`` of ``true`` (``argv``: ``runtime.argv("exec", id, "true")``)."""
    return lambda: c._timed(argv)
