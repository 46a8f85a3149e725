"""Sandboxes by state over time: a sampler thread counts them every ``interval`` seconds by
(tenant, state) and keeps the last ``kept`` samples in memory (an hour by default), so a
tenant's chart shows only its own. Lost when the server restarts."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from sandpool.service.dashboard.figures import LIVE_STATES

__all__ = ["Sample", "StateHistory"]

SAMPLE_INTERVAL_S = 10.0
SAMPLES_KEPT = 360


@dataclass(frozen=True)
class Sample:
    """How many sandboxes each (tenant id or '', state) had at ``at``."""

    at: float
    counts: Counter[tuple[str, str]]


class StateHistory:
    """The samples; ``take`` may also be called directly. Thread-safe."""

    def __init__(
        self,
        count: Callable[[], Counter[tuple[str, str]]],
        interval: float = SAMPLE_INTERVAL_S,
        kept: int = SAMPLES_KEPT,
    ) -> None:
        self._count, self.interval = count, interval
        self._samples: deque[Sample] = deque(maxlen=kept)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling in a daemon thread (once)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dashboard-history",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a store or manager hiccup: next time
                self.take()
            self._stop.wait(self.interval)

    def take(self) -> None:
        """Record one sample now."""
        sample = Sample(time.time(), self._count())
        with self._lock:
            self._samples.append(sample)

    def series(self, tenant_id: str | None) -> tuple[list[float], dict[str, list[int]]]:
        """Times and, per live state, the count at each (every tenant's when None)."""
        with self._lock:
            samples = list(self._samples)
        times = [s.at for s in samples]
        series = {state: [_total(s.counts, state, tenant_id) for s in samples]
                  for state in LIVE_STATES}  # fmt: skip
        return times, series


def _total(counts: Counter[tuple[str, str]], state: str, tenant_id: str | None) -> int:
    return sum(n for (tenant, s), n in counts.items()
               if s == state and (tenant_id is None or tenant == tenant_id))  # fmt: skip
