"""One-shot runs for the API: admitted against the tenant's quota, run by ``Sandpool.run``
in a worker thread (the event loop never waits on a container), counted in the metrics, and
stopped when the server stops.

The executor is an interface so that tests (and, later, a remote worker) can stand in for
``Sandpool``; ``SandpoolExecutor`` is the real one.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import anyio.to_thread

from sandpool.api import Sandpool
from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.service.metrics import ServiceMetrics, exit_class
from sandpool.service.quotas import QuotaLease
from sandpool.sizes import parse_size
from sandpool.worker.container import Stdio
from sandpool.worker.request import RunRequest, RunResult

__all__ = ["RunExecutor", "RunService", "SandpoolExecutor", "run_cost"]

MAX_RUN_THREADS = 256  # runs at once in one server (tenant quotas are usually far below)


class Stoppable(Protocol):
    """A container run that another thread may stop (``worker.handle.RunHandle`` is one:
    a cold ``ContainerRun`` or a warm run)."""

    def stop(self) -> None: ...


class RunExecutor(Protocol):
    """Runs one request to its end in the calling thread; ``on_container`` gets a handle that
    stops it. Thread-safe."""

    def run(self, pool: str, request: RunRequest, stdin: bytes | None,
            on_container: Callable[[Stoppable], None]) -> RunResult: ...  # fmt: skip

    def close(self) -> None: ...


class SandpoolExecutor:
    """The executor over one ``Sandpool`` (its warm cgroups and disks shared by all runs);
    ``keep_sandboxes``: closing leaves its sandboxes running for the next server to adopt."""

    def __init__(self, sandpool: Sandpool, *, keep_sandboxes: bool = False) -> None:
        self.sandpool, self.keep_sandboxes = sandpool, keep_sandboxes

    def run(self, pool: str, request: RunRequest, stdin: bytes | None,
            on_container: Callable[[Stoppable], None]) -> RunResult:  # fmt: skip
        """``Sandpool.run_request`` with captured output and ``stdin`` fed from a file (none:
        ``/dev/null``, and no file made)."""
        if not stdin:
            stdio = Stdio(None, capture=True)
            return self.sandpool.run_request(pool, request, stdio, on_container=on_container)
        with tempfile.TemporaryFile() as feed:
            feed.write(stdin)
            feed.seek(0)
            stdio = Stdio(feed, capture=True)
            return self.sandpool.run_request(pool, request, stdio, on_container=on_container)

    def close(self) -> None:
        """Remove the warm cgroups and disks; terminate the sandboxes or keep them."""
        self.sandpool.close(keep_sandboxes=self.keep_sandboxes)


def run_cost(pool: ResolvedPool, request: RunRequest) -> tuple[float, int]:
    """What a run counts against the quota: its cpu limit (1 core when it has none) and its
    memory limit (the pool's default when it asks for none)."""
    cpu = request.cpu if request.cpu is not None else (pool.cpu or 1.0)
    return cpu, parse_size(request.memory or pool.memory)


class RunService:
    """Runs in flight, in threads of their own; thread-safe."""

    def __init__(self, config: ResolvedConfig, executor: RunExecutor,
                 metrics: ServiceMetrics) -> None:  # fmt: skip
        self.config, self.executor, self.metrics = config, executor, metrics
        self._limiter = anyio.CapacityLimiter(MAX_RUN_THREADS)
        self._lock = threading.Condition()
        self._live: set[Any] = set()
        self._active = 0  # runs in their thread, with a container or not yet
        self._closed = False

    async def run(self, pool: str, request: RunRequest, stdin: bytes | None,
                  lease: QuotaLease) -> RunResult:  # fmt: skip
        """Run to the end in a worker thread; the lease is released however it ends."""
        gauge = self.metrics.runs_in_flight.labels(pool)
        gauge.inc()
        started = time.monotonic()
        try:
            result = await anyio.to_thread.run_sync(self._run_blocking, pool, request, stdin,
                                                    limiter=self._limiter)  # fmt: skip
        finally:
            lease.release()
            gauge.dec()
        self.metrics.run_seconds.labels(pool).observe(time.monotonic() - started)
        kind = exit_class(result.exit_code, result.oom_killed, result.timed_out, result.error)
        self.metrics.count_run(pool, kind, result.network_bytes_in, result.network_bytes_out)
        return result

    def _run_blocking(self, pool: str, request: RunRequest, stdin: bytes | None) -> RunResult:
        handles: list[Stoppable] = []
        with self._lock:
            self._active += 1

        def track(container: Stoppable) -> None:
            with self._lock:
                handles.append(container)
                self._live.add(container)
                if self._closed:
                    container.stop()

        try:
            return self.executor.run(pool, request, stdin, track)
        finally:
            with self._lock:
                self._live.difference_update(handles)
                self._active -= 1
                self._lock.notify_all()

    def stop_all(self) -> int:
        """Stop every run in flight and any that starts from now on (the server is going
        away); how many were stopped."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for container in live:
            container.stop()
        return len(live)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in its thread any more (each has cleaned up after its
        container); whether that happened within ``timeout`` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout)

    def in_flight(self) -> int:
        """How many runs have a container now."""
        with self._lock:
            return len(self._live)
