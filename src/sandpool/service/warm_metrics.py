"""The warm pools on ``/metrics``, read at each scrape from the manager's own counters
(``SandboxManager.warm_stats``) and the idle warm sandboxes' cgroups:

    sandpool_warm_pool_size{pool}                 configured ``warmPool.size``
    sandpool_warm_pool_ready{pool}                ready to be claimed now
    sandpool_warm_pool_starting{pool}             being started now
    sandpool_warm_pool_{claims,misses,refills,failures,discarded}_total{pool}
    sandpool_warm_pool_refill_seconds{pool}       summary: count and sum of refill times
    sandpool_warm_pool_refill_last_seconds{pool}  the last refill's time
    sandpool_warm_sandbox_memory_bytes{pool}      memory in use per idle warm sandbox (mean)

A scrape never starts the warm pools: before a first create (or ``start_warm``) only the
configured sizes are shown.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from sandpool.sandbox import SandboxManager
from sandpool.sandbox.usage import read_usage
from sandpool.sandbox.warm import WarmStats

__all__ = ["WarmCollector", "warm_memory_by_pool"]

_COUNTERS = ("claims", "misses", "refills", "failures", "discarded")
Family = GaugeMetricFamily | CounterMetricFamily | SummaryMetricFamily


class WarmCollector(Collector):
    """Exports one manager's warm pools (see the module docstring)."""

    def __init__(self, manager: SandboxManager) -> None:
        self._manager = manager

    def _stats(self) -> list[WarmStats]:
        if self._manager.warm_started():
            return self._manager.warm_stats()
        pools = self._manager.config.pools.values()
        return [WarmStats(p.name, p.warm_pool.size) for p in pools if p.warm_pool.size > 0]

    def collect(self) -> Iterator[Family]:
        stats = self._stats()
        yield from _gauges(stats)
        for counter in _COUNTERS:
            family = CounterMetricFamily(f"sandpool_warm_pool_{counter}",
                                         f"Warm pool {counter}", labels=["pool"])  # fmt: skip
            for s in stats:
                family.add_metric([s.pool], getattr(s, counter))
            yield family
        refill = SummaryMetricFamily("sandpool_warm_pool_refill_seconds",
                                     "Time to start one warm sandbox", labels=["pool"])  # fmt: skip
        for s in stats:
            refill.add_metric([s.pool], s.refills, s.refill_ms_total / 1000)
        yield refill
        yield _memory_family(self._manager)


def _gauges(stats: list[WarmStats]) -> Iterator[GaugeMetricFamily]:
    for name, what in (("size", "Configured warm pool size"),
                       ("ready", "Warm sandboxes ready to be claimed"),
                       ("starting", "Warm sandboxes being started")):  # fmt: skip
        family = GaugeMetricFamily(f"sandpool_warm_pool_{name}", what, labels=["pool"])
        for s in stats:
            family.add_metric([s.pool], getattr(s, name))
        yield family
    last = GaugeMetricFamily("sandpool_warm_pool_refill_last_seconds",
                             "Time the last warm refill took", labels=["pool"])  # fmt: skip
    for s in stats:
        if s.refill_ms_last is not None:
            last.add_metric([s.pool], s.refill_ms_last / 1000)
    yield last


def warm_memory_by_pool(manager: SandboxManager) -> dict[str, float]:
    """Pool -> mean memory in use (bytes) of its idle warm sandboxes (those with a figure)."""
    if not manager.warm_started():
        return {}
    found: dict[str, list[int]] = {}
    for info in manager.warm():
        now = read_usage(manager.state_dir, info.id).memory_now
        if now is not None:
            found.setdefault(info.pool, []).append(now)
    return {pool: sum(values) / len(values) for pool, values in found.items()}


def _memory_family(manager: SandboxManager) -> GaugeMetricFamily:
    family = GaugeMetricFamily("sandpool_warm_sandbox_memory_bytes",
                               "Memory in use per idle warm sandbox (mean over the ready ones)",
                               labels=["pool"])  # fmt: skip
    for pool, mean in sorted(warm_memory_by_pool(manager).items()):
        family.add_metric([pool], mean)
    return family
