"""The pools page's figures: one row per pool (configuration, warm pool, live counts) and
the charts (sandboxes by state over time, start latency per pool, OOMs per pool), each for
what the viewer may see."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup

from sandpool.config.resolved import ResolvedPool
from sandpool.sandbox.warm import WarmStats
from sandpool.service.apikeys import Principal
from sandpool.service.dashboard.charts import bar_chart, grouped_bars, line_chart
from sandpool.service.dashboard.failures import run_failures
from sandpool.service.dashboard.figures import (
    START_BUCKETS,
    Started,
    oom_kills_by_pool,
    start_histogram,
)
from sandpool.service.dashboard.remote import oom_ends_by_pool, recent_records
from sandpool.service.dashboard.source import DashboardSource
from sandpool.service.dashboard.workers import Registry, warm_of_workers

if TYPE_CHECKING:
    from sandpool.service.dashboard.state import DashboardState

__all__ = ["PoolRow", "charts_of", "pool_rows"]


@dataclass(frozen=True)
class PoolRow:
    """One pool on the pools page."""

    pool: ResolvedPool
    counts: dict[str, int]  # state -> sandboxes (the viewer's)
    warm: WarmStats | None  # None: the warm pools have not started (no create yet)


def pool_rows(source: DashboardSource, viewer: Principal,
              registry: Registry | None = None) -> list[PoolRow]:  # fmt: skip
    """Every configured pool with the viewer's live counts and its warm pool (on a gateway:
    the ready warm sandboxes its workers last reported)."""
    counts = source.counts_by_pool(viewer)
    manager = source.manager()
    pools = source.context.config.pools
    warm: dict[str, WarmStats] = {}
    if manager is not None and manager.warm_started():
        warm = {stats.pool: stats for stats in manager.warm_stats()}
    elif manager is None and registry is not None:
        warm = warm_of_workers(registry, {n: p.warm_pool.size for n, p in pools.items()})
    return [PoolRow(pools[name], {s: n for (p, s), n in counts.items() if p == name},
                    warm.get(name)) for name in sorted(pools)]  # fmt: skip


def charts_of(dashboard: DashboardState, viewer: Principal) -> dict[str, Markup]:
    """The three charts, as inline SVG."""
    source = dashboard.source
    tenant_id = viewer.tenant.id if viewer.tenant is not None else None
    times, series = dashboard.history.series(tenant_id)
    labels = [f"≤{b:g}s" for b in START_BUCKETS] + [f">{START_BUCKETS[-1]:g}s"]
    starts: Sequence[Started]
    if source.remote:  # a gateway: from the records of the sandboxes its workers ran
        starts = recent_records(source.listing, tenant_id)
        ooms = oom_ends_by_pool(source.listing, tenant_id)
    else:
        starts = infos = source.scoped_infos(viewer)
        ooms = Counter(oom_kills_by_pool(infos))
    if viewer.tenant is None:  # one-shot runs are counted per pool, not per tenant
        for pool, kinds in run_failures(dashboard.source).items():
            ooms[pool] += kinds.get("oom", 0)
    return {
        "states": line_chart(times, series, "Sandboxes by state over time"),
        "latency": grouped_bars(labels, start_histogram(starts), "Start latency per pool"),
        "ooms": bar_chart({p: float(n) for p, n in sorted(ooms.items())}, "OOM kills per pool"),
    }
