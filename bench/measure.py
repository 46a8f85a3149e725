"""Measuring loops: alternating latency samples, concurrent throughput, percentiles."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping

from bench.contenders import Contender

__all__ = ["alternate", "percentile", "summary", "throughput"]


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples: list[float]) -> dict[str, float]:
    """p50/p95/mean/min in milliseconds."""
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(min(ms), 2),
        "n": len(ms),
    }


def alternate(
    contenders: Mapping[str, Contender],
    n: int,
    warmup: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, list[float]]:
    """``n`` samples of each contender, one of each per iteration, the order rotated every
    iteration so that no contender always runs right after the same other one."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
        if (i + 1) % max(1, n // 4) == 0:
            progress(f"  {i + 1}/{n}")
    return samples


def throughput(contender: Contender, concurrency: int, total: int) -> float:
    """Containers per second with ``concurrency`` threads running ``total`` containers."""
    remaining = [total]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0 or errors:
                    return
                remaining[0] -= 1
            try:
                contender()
            except BaseException as exc:  # reported by the caller
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return total / elapsed
