"""The pure parts of the sandbox metrics: exec classes, warm-or-cold creates, the exec
watcher and the warm collector over stand-in managers, usage's JSON both ways, and the
network-change check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sandpool.client import AsyncClient, AsyncSandbox, Client, Sandbox
from sandpool.client import SandboxUsage as ClientUsage
from sandpool.errors import Conflict, InvalidRequest, SandboxStateError
from sandpool.sandbox import EndReason, ExecResult, SandboxInfo, SandboxManager, SandboxState
from sandpool.sandbox.usage import SandboxUsage
from sandpool.sandbox.warm import WarmStats
from sandpool.service import exec_metrics
from sandpool.service.exec_metrics import ExecMetrics, exec_class
from sandpool.service.metrics import create_source
from sandpool.service.sandbox_errors import check_network_change
from sandpool.service.warm_metrics import WarmCollector


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def info(**changes: Any) -> SandboxInfo:
    return SandboxInfo(id="sp-1", pool="p", container_runtime="runc", gvisor_platform=None,
                       image="img", **changes)  # fmt: skip


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        (ExecResult("e", "s", exit_code=0), "ok"),
        (ExecResult("e", "s", exit_code=3), "nonzero"),
        (ExecResult("e", "s", exit_code=137, killed=True), "nonzero"),
        (ExecResult("e", "s", exit_code=124, timed_out=True), "timeout"),
        (ExecResult("e", "s", exit_code=137, oom_killed=True, error="sandbox ended"), "oom"),
        (ExecResult("e", "s", exit_code=137, error="sandbox sp-1 ended (ttl)"), "error"),
    ],
)
def test_exec_class(result: ExecResult, kind: str) -> None:
    assert exec_class(result) == kind


def test_a_claimed_sandbox_is_warm_and_a_started_one_cold() -> None:
    assert create_source(info(created_at=10.0, ready_at=10.0)) == "warm"
    assert create_source(info(created_at=10.0, ready_at=10.2)) == "cold"
    assert create_source(info(created_at=10.0, ready_at=None)) == "cold"


@dataclass
class FakeExecs:
    """A manager whose execs end when told; ``gone`` sandboxes ended with ``reason``."""

    results: dict[str, ExecResult | None] = field(default_factory=dict)
    gone: dict[str, EndReason] = field(default_factory=dict)

    def exec_wait(self, sandbox_id: str, exec_id: str, timeout: float) -> ExecResult | None:
        if sandbox_id in self.gone:
            raise SandboxStateError(f"sandbox {sandbox_id} is terminated")
        return self.results[exec_id]

    def get(self, sandbox_id: str) -> SandboxInfo:
        return info(reason=self.gone[sandbox_id])


def test_execs_are_counted_once_they_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exec_metrics, "POLL_S", 0.01)
    registry = CollectorRegistry()
    metrics, fake = ExecMetrics(registry), FakeExecs()
    manager = cast(SandboxManager, fake)
    fake.results = {"a": None, "b": None}
    metrics.started(manager, "p", "s1", "a")
    metrics.started(manager, "p", "s2", "b")
    time.sleep(0.1)
    assert metrics.in_flight() == 2  # nothing ended: nothing counted
    fake.results["a"] = ExecResult("a", "s1", exit_code=0, started_at=1.0, finished_at=1.5)
    fake.gone["s2"] = EndReason.OOM  # its sandbox ended before its end was seen
    deadline = time.monotonic() + 5
    while metrics.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    found = samples(registry)
    assert found["sandpool_execs_total", (("exit_class", "ok"), ("pool", "p"))] == 1
    assert found["sandpool_execs_total", (("exit_class", "oom"), ("pool", "p"))] == 1
    assert found["sandpool_exec_duration_seconds_count", (("pool", "p"),)] == 1
    assert found["sandpool_exec_duration_seconds_sum", (("pool", "p"),)] == 0.5


@dataclass
class FakeWarm:
    """A manager with one warm pool (``started``: its pools run)."""

    started: bool
    config: Any = None
    state_dir: Any = None

    def warm_started(self) -> bool:
        return self.started

    def warm_stats(self) -> list[WarmStats]:
        return [WarmStats("w", 2, ready=1, claims=5, misses=2, refills=6, refill_ms_total=600.0,
                          refill_ms_last=80.0)]  # fmt: skip

    def warm(self) -> list[SandboxInfo]:
        return []


def test_warm_pools_are_read_at_scrape_and_never_started_by_one() -> None:
    pool = type("Pool", (), {"name": "w", "warm_pool": type("W", (), {"size": 2})()})()
    fake = FakeWarm(started=False, config=type("C", (), {"pools": {"w": pool}})())
    registry = CollectorRegistry()
    registry.register(WarmCollector(cast(SandboxManager, fake)))
    before = samples(registry)
    assert before["sandpool_warm_pool_size", (("pool", "w"),)] == 2
    assert before["sandpool_warm_pool_claims_total", (("pool", "w"),)] == 0
    fake.started = True
    after = samples(registry)
    assert after["sandpool_warm_pool_ready", (("pool", "w"),)] == 1
    assert after["sandpool_warm_pool_claims_total", (("pool", "w"),)] == 5
    assert after["sandpool_warm_pool_misses_total", (("pool", "w"),)] == 2
    assert after["sandpool_warm_pool_refill_seconds_count", (("pool", "w"),)] == 6
    assert after["sandpool_warm_pool_refill_seconds_sum", (("pool", "w"),)] == 0.6
    assert after["sandpool_warm_pool_refill_last_seconds", (("pool", "w"),)] == 0.08


def test_usage_json_both_ways() -> None:
    usage = SandboxUsage(cpu_seconds=1.5, memory_peak=200, disk_used=None, memory_now=100)
    data = usage.to_json()
    assert data == {"cpuSeconds": 1.5, "memoryBytes": 100, "memoryPeakBytes": 200,
                    "diskUsedBytes": None}  # fmt: skip
    assert SandboxUsage.from_json(data) == usage
    assert ClientUsage.from_json(data) == ClientUsage(1.5, 100, 200, None)
    assert ClientUsage.from_json(None) is None


def test_a_network_change_needs_a_network_made_at_create() -> None:
    with pytest.raises(Conflict, match="created without a network") as refused:
        check_network_change(info(network="none"), "allow")
    assert "chosen at create" in (refused.value.hint or "")
    with pytest.raises(InvalidRequest, match="cannot go to 'none'") as bad:
        check_network_change(info(network="allow"), "none")
    assert bad.value.field == "network"
    check_network_change(info(network="allow"), "open")  # allowed


def test_a_network_change_on_an_ended_sandbox_says_it_ended() -> None:
    ended = info(network="none", state=SandboxState.TERMINATED, reason=EndReason.KILLED)
    with pytest.raises(Conflict, match=r"is terminated \(killed\)") as refused:
        check_network_change(ended, "open")
    assert refused.value.hint == "create a new sandbox"


SANDBOX_ANSWER = {
    "id": "sp-1", "pool": "p", "image": "img", "state": "running", "reason": None,
    "labels": {}, "containerRuntime": "runc", "gvisorPlatform": None,
    "createdAt": "2026-01-01T00:00:00.000Z", "expiresAt": None, "endedAt": None,
    "oomKills": 0, "usage": {"cpuSeconds": 0.25, "memoryBytes": 1024,
                             "memoryPeakBytes": 4096, "diskUsedBytes": 20 * 1024 * 1024},
}  # fmt: skip


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=SANDBOX_ANSWER)


def test_both_sdk_twins_read_a_sandboxs_usage() -> None:
    expected = ClientUsage(0.25, 1024, 4096, 20 * 1024 * 1024)
    with Client("http://x", "k", transport=httpx.MockTransport(_answer)) as client:
        assert Sandbox.connect("sp-1", client=client).refresh().usage == expected

    async def connect() -> ClientUsage | None:
        async with AsyncClient("http://x", "k", transport=httpx.MockTransport(_answer)) as aio:
            sb = await AsyncSandbox.connect("sp-1", client=aio)
            return (await sb.refresh()).usage

    assert asyncio.run(connect()) == expected
