"""The pools page's figures: one row per pool (configuration, warm pool, live counts) and
the charts (sandboxes by state over time, start latency per pool, OOMs per pool), each for
what the viewer may see."""

from __future__ import annotations

from collections import Counter
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
    oom_kills_by_pool,
    start_histogram,
)
from sandpool.service.dashboard.source import DashboardSource

if TYPE_CHECKING:
    from sandpool.service.dashboard.state import DashboardState

__all__ = ["PoolRow", "charts_of", "pool_rows"]


@dataclass(frozen=True)
class PoolRow:
    """One pool on the pools page."""

    pool: ResolvedPool
    counts: dict[str, int]  # state -> sandboxes (the viewer's)
    warm: WarmStats | None  # None: the warm pools have not started (no create yet)


def pool_rows(source: DashboardSource, viewer: Principal) -> list[PoolRow]:
    """Every configured pool with the viewer's live counts."""
    counts = source.counts_by_pool(viewer)
    manager = source.manager()
    warm: dict[str, WarmStats] = {}
    if manager is not None and manager.warm_started():
        warm = {stats.pool: stats for stats in manager.warm_stats()}
    pools = source.context.config.pools
    return [PoolRow(pools[name], {s: n for (p, s), n in counts.items() if p == name},
                    warm.get(name)) for name in sorted(pools)]  # fmt: skip


def charts_of(dashboard: DashboardState, viewer: Principal) -> dict[str, Markup]:
    """The three charts, as inline SVG."""
    infos = dashboard.source.scoped_infos(viewer)
    tenant_id = viewer.tenant.id if viewer.tenant is not None else None
    times, series = dashboard.history.series(tenant_id)
    labels = [f"≤{b:g}s" for b in START_BUCKETS] + [f">{START_BUCKETS[-1]:g}s"]
    ooms: Counter[str] = Counter(oom_kills_by_pool(infos))
    if viewer.tenant is None:  # one-shot runs are counted per pool, not per tenant
        for pool, kinds in run_failures(dashboard.source).items():
            ooms[pool] += kinds.get("oom", 0)
    return {
        "states": line_chart(times, series, "Sandboxes by state over time"),
        "latency": grouped_bars(labels, start_histogram(infos), "Start latency per pool"),
        "ooms": bar_chart({p: float(n) for p, n in sorted(ooms.items())}, "OOM kills per pool"),
    }
