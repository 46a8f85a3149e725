"""The figures behind the dashboard's charts, from the sandboxes this server runs: counts by
pool and state, start latency per pool, OOM kills per pool. The same functions feed
``/metrics`` (``SandboxCollector``), so a chart and a scrape never disagree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sandpool.sandbox.models import SandboxInfo, SandboxState

__all__ = [
    "LIVE_STATES",
    "START_BUCKETS",
    "SandboxCollector",
    "counts_by_state",
    "oom_kills_by_pool",
    "start_histogram",
]

START_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds from create to running
LIVE_STATES = ("creating", "running", "paused", "terminating")
StateCounts = Counter[tuple[str, str]]  # (pool, state) -> sandboxes


def counts_by_state(infos: Iterable[SandboxInfo]) -> Counter[tuple[str, str]]:
    """(pool, state) -> how many sandboxes."""
    return Counter((info.pool, info.state.value) for info in infos)


class Started(Protocol):
    """A sandbox's start as the latency chart needs it: a ``SandboxInfo`` or, on a gateway,
    a store record."""

    @property
    def pool(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def created_at(self) -> float: ...

    @property
    def ready_at(self) -> float | None: ...


def start_histogram(infos: Iterable[Started]) -> dict[str, list[int]]:
    """Pool -> sandboxes per start-latency bucket (not cumulative; the last one is +Inf)."""
    found: dict[str, list[int]] = {}
    for info in infos:
        if info.ready_at is None or info.state == SandboxState.WARM:
            continue
        counts = found.setdefault(info.pool, [0] * (len(START_BUCKETS) + 1))
        latency = info.ready_at - info.created_at
        counts[next((i for i, b in enumerate(START_BUCKETS) if latency <= b),
                    len(START_BUCKETS))] += 1  # fmt: skip
    return found


def oom_kills_by_pool(infos: Iterable[SandboxInfo]) -> Counter[str]:
    """Pool -> OOM kills seen in its sandboxes."""
    kills: Counter[str] = Counter()
    for info in infos:
        kills[info.pool] += info.oom_kills
    return kills


class SandboxCollector(Collector):
    """Exports the figures above on ``/metrics``, read from ``infos`` at each scrape; the
    counts by state from ``counts`` where given (a gateway: its records of the sandboxes its
    workers run)."""

    def __init__(self, infos: Callable[[], list[SandboxInfo]],
                 counts: Callable[[], StateCounts | None] | None = None) -> None:  # fmt: skip
        self._infos, self._counts = infos, counts

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily | CounterMetricFamily]:
        infos = self._infos()
        states = GaugeMetricFamily("sandpool_sandboxes", "Sandboxes of this server by state",
                                   labels=["pool", "state"])  # fmt: skip
        counted = self._counts() if self._counts is not None else None
        if counted is None:
            counted = counts_by_state(infos)
        for (pool, state), count in sorted(counted.items()):
            states.add_metric([pool, state], count)
        yield states
        yield _start_family(infos)
        ooms = CounterMetricFamily("sandpool_sandbox_oom_kills",
                                   "OOM kills in sandboxes, by pool", labels=["pool"])  # fmt: skip
        for pool, kills in sorted(oom_kills_by_pool(infos).items()):
            ooms.add_metric([pool], kills)
        yield ooms
        yield _network_family(infos)


def network_bytes_by_pool(infos: Iterable[SandboxInfo]) -> Counter[tuple[str, str]]:
    """(pool, in|out) -> network bytes of the sandboxes (host side of their veths)."""
    found: Counter[tuple[str, str]] = Counter()
    for info in infos:
        found[info.pool, "in"] += info.network_bytes_in or 0
        found[info.pool, "out"] += info.network_bytes_out or 0
    return found


def _network_family(infos: list[SandboxInfo]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("sandpool_sandbox_network_bytes",
                               "Network bytes of the sandboxes this server remembers, by pool "
                               "and direction (in|out)", labels=["pool", "direction"])  # fmt: skip
    for (pool, direction), count in sorted(network_bytes_by_pool(infos).items()):
        family.add_metric([pool, direction], count)
    return family


def _start_family(infos: list[SandboxInfo]) -> HistogramMetricFamily:
    family = HistogramMetricFamily("sandpool_sandbox_start_seconds",
                                   "Time from create to running, of the sandboxes this server "
                                   "remembers", labels=["pool"])  # fmt: skip
    for pool, counts in sorted(start_histogram(infos).items()):
        total, buckets = 0, []
        for bound, count in zip((*map(str, START_BUCKETS), "+Inf"), counts, strict=True):
            total += count
            buckets.append((bound, float(total)))
        latency_sum = sum(i.ready_at - i.created_at for i in infos
                          if i.pool == pool and i.ready_at is not None)  # fmt: skip
        family.add_metric([pool], buckets, latency_sum)
    return family
