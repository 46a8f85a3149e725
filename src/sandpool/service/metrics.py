"""The Prometheus metrics of one server, in a registry of its own (two apps in one process,
as in tests, do not share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandpool.sandbox import SandboxInfo, SandboxManager
from sandpool.service.exec_metrics import ExecMetrics
from sandpool.service.warm_metrics import WarmCollector

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "create_source", "exit_class"]

CREATE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def exit_class(exit_code: int, oom_killed: bool, timed_out: bool, error: str | None) -> str:
    """``ok``, ``nonzero``, ``oom``, ``timeout`` or ``error`` (the runtime failed)."""
    if error:
        return "error"
    if oom_killed:
        return "oom"
    if timed_out:
        return "timeout"
    return "ok" if exit_code == 0 else "nonzero"


def create_source(info: SandboxInfo) -> str:
    """``warm`` for a sandbox claimed from a warm pool, else ``cold``: a claim makes it
    ready and created at the same instant (``SandboxManager._claimed``), a cold start
    becomes ready only after its container started."""
    return "warm" if info.ready_at is not None and info.ready_at == info.created_at else "cold"


class ServiceMetrics:
    """Counters and histograms of requests, runs, sandbox creates, execs and quota refusals;
    thread-safe. ``watch`` adds a sandbox manager's warm pools, read at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sandpool_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)  # fmt: skip
        self.request_seconds = Histogram("sandpool_http_request_duration_seconds",
                                         "Time to answer an HTTP request", ["method", "route"],
                                         buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.runs = Counter("sandpool_runs", "One-shot runs ended, by pool and exit class",
                            ["pool", "exit_class"], registry=r)  # fmt: skip
        self.run_seconds = Histogram("sandpool_run_duration_seconds",
                                     "Wall time of one-shot runs", ["pool"],
                                     buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.runs_in_flight = Gauge("sandpool_runs_in_flight", "One-shot runs going on now",
                                    ["pool"], registry=r)  # fmt: skip
        self.quota_refusals = Counter("sandpool_quota_refusals",
                                      "Requests refused by a tenant quota (429)", ["reason"],
                                      registry=r)  # fmt: skip
        self.errors = Counter("sandpool_errors", "Error answers by code", ["code"], registry=r)
        self.run_network_bytes = Counter("sandpool_run_network_bytes",
                                         "Network bytes of one-shot runs (host side of their "
                                         "veth; direction in|out)", ["pool", "direction"],
                                         registry=r)  # fmt: skip
        self.sandbox_creates = Counter("sandpool_sandbox_creates",
                                       "Sandbox creates through the API, by pool, outcome (ok, "
                                       "refused: a quota, failed) and source (warm, cold, none)",
                                       ["pool", "outcome", "source"], registry=r)  # fmt: skip
        self.sandbox_create_seconds = Histogram("sandpool_sandbox_create_duration_seconds",
                                                "Time to create a sandbox (until it runs), by "
                                                "pool and source (warm hit or cold)",
                                                ["pool", "source"], buckets=CREATE_BUCKETS,
                                                registry=r)  # fmt: skip
        self.execs = ExecMetrics(r)

    def watch(self, manager: SandboxManager) -> None:
        """Export ``manager``'s warm pools (``service.warm_metrics``) from now on."""
        self.registry.register(WarmCollector(manager))

    def count_create(self, pool: str, outcome: str, source: str, seconds: float | None) -> None:
        """One create through the API: how it ended and, if it ran, how long it took."""
        self.sandbox_creates.labels(pool, outcome, source).inc()
        if seconds is not None:
            self.sandbox_create_seconds.labels(pool, source).observe(seconds)

    def count_run(self, pool: str, kind: str, network_in: int | None,
                  network_out: int | None) -> None:  # fmt: skip
        """One ended run: its exit class and, with a network, its bytes in and out."""
        self.runs.labels(pool, kind).inc()
        for direction, count in (("in", network_in), ("out", network_out)):
            if count:
                self.run_network_bytes.labels(pool, direction).inc(count)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
