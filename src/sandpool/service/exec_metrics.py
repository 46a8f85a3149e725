"""Execs started through the API, counted once they end: ``sandpool_execs_total{pool,
exit_class}`` (ok, nonzero, oom, timeout, error) and ``sandpool_exec_duration_seconds{pool}``.

An exec ends in its own thread, deep in the sandbox layer; rather than hook in there, one
watcher thread looks at the execs in flight every ``POLL_S`` (a dict lookup each, no
subprocess) and counts those that ended, so a count shows up at most ``POLL_S`` late. An exec
whose sandbox ended under it before the watcher saw its end is counted from the sandbox's end
reason (``oom``, else ``error``), with no duration. The thread runs only while execs are in
flight. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from sandpool.errors import SandpoolError
from sandpool.sandbox import EndReason, ExecResult, SandboxManager

__all__ = ["EXEC_BUCKETS", "POLL_S", "ExecMetrics", "exec_class"]

POLL_S = 0.2
EXEC_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                1800, 3600)  # fmt: skip


def exec_class(result: ExecResult) -> str:
    """``oom``, ``timeout``, ``error`` (it could not run, or its sandbox ended under it),
    ``ok`` or ``nonzero`` (a kill included: 137)."""
    if result.oom_killed:
        return "oom"
    if result.timed_out:
        return "timeout"
    if result.error:
        return "error"
    return "ok" if result.exit_code == 0 else "nonzero"


@dataclass(frozen=True)
class _InFlight:
    manager: SandboxManager
    pool: str


class ExecMetrics:
    """The exec counters of one server or worker (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.execs = Counter("sandpool_execs", "Execs in sandboxes ended, by pool and exit class",
                             ["pool", "exit_class"], registry=registry)  # fmt: skip
        self.seconds = Histogram("sandpool_exec_duration_seconds", "Wall time of ended execs",
                                 ["pool"], buckets=EXEC_BUCKETS, registry=registry)  # fmt: skip
        self._lock = threading.Lock()
        self._flight: dict[tuple[str, str], _InFlight] = {}
        self._thread: threading.Thread | None = None

    def started(self, manager: SandboxManager, pool: str, sandbox_id: str, exec_id: str) -> None:
        """Watch an exec that was just started, and count it once it ends."""
        with self._lock:
            self._flight[sandbox_id, exec_id] = _InFlight(manager, pool)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="exec-metrics",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def in_flight(self) -> int:
        """How many execs are watched now."""
        with self._lock:
            return len(self._flight)

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_S)
            with self._lock:
                if not self._flight:
                    self._thread = None
                    return
                watched = list(self._flight.items())
            for (sandbox_id, exec_id), flight in watched:
                if self._check(flight, sandbox_id, exec_id):
                    with self._lock:
                        self._flight.pop((sandbox_id, exec_id), None)

    def _check(self, flight: _InFlight, sandbox_id: str, exec_id: str) -> bool:
        """Count the exec if it ended; whether it did."""
        try:
            result = flight.manager.exec_wait(sandbox_id, exec_id, 0)
        except SandpoolError:  # its sandbox ended (or forgot it) before it was seen ending
            self.execs.labels(flight.pool, _ended_with(flight.manager, sandbox_id)).inc()
            return True
        if result is None:
            return False
        self.execs.labels(flight.pool, exec_class(result)).inc()
        self.seconds.labels(flight.pool).observe(max(0.0, result.duration_ms / 1000))
        return True


def _ended_with(manager: SandboxManager, sandbox_id: str) -> str:
    try:
        reason = manager.get(sandbox_id).reason
    except SandpoolError:
        return "error"
    return "oom" if reason == EndReason.OOM else "error"
