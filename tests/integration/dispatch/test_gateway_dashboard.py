"""The dashboard and ``/metrics`` of a gateway (``sandpool server --redis``) with a runc worker
(a warm pool of one) and a gVisor worker as real processes: pause, resume and terminate from
the dashboard act on the worker holding the sandbox (a tenant only on its own; the admin on
any); the sandbox page shows the worker's live view, usage, and execs with their output; the
pools page counts the sandboxes the workers run, their warm pools, start latencies and
health; the gateway counts its creates (warm or cold, refused) and one-shot runs under the
embedded server's names; its wrong-state answers (409) say what is wrong and the fix, as the
embedded server's do. Nothing leaks on any process."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sandpool.client import Client, Conflict, QuotaExceeded, Sandbox
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import AUTH, Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer
from tests.integration.service.state_errors import assert_state_errors

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip

ADMIN = "sp_admin_" + "x" * 32  # the Gateway fixture's admin key
GATEWAY = "gateway:\n  tenantQuota: {concurrent: 2, createsPerSecond: 100}\n"
WARM = "      containerRuntime: runc\n      warmPool: {size: 1}\n"


@dataclass
class Cluster:
    gateway: Gateway
    runc: Worker
    gvisor: Worker
    redis: redis.Redis

    def key(self, tenant: str) -> dict[str, str]:
        with Client(self.gateway.url, ADMIN) as admin:
            admin.create_tenant(tenant)
            return {"Authorization": f"Bearer {admin.create_key(tenant).key}"}

    def held_by(self, worker: Worker, sandbox_id: str) -> str | None:
        """The sandbox's state on ``worker`` (None: that worker does not have it)."""
        answer = httpx.get(f"{worker.address}/internal/v1/sandboxes/{sandbox_id}",
                           headers=AUTH, timeout=30)  # fmt: skip
        return str(answer.json()["state"]) if answer.status_code == 200 else None

    def worker(self, pool: str) -> Worker:
        return self.runc if pool == "performance" else self.gvisor


def _with_warm_pool(path: Path) -> None:
    path.write_text(path.read_text().replace("      containerRuntime: runc\n", WARM, 1))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        server = RedisServer(Path(redis_dir))
        gw_box, a, b = box_of(base, "gw"), box_of(base, "a"), box_of(base, "b")
        gw_box.config_file.write_text(gw_box.config_file.read_text() + GATEWAY)
        for box in (gw_box, a):  # the gateway knows the warm template too
            _with_warm_pool(box.config_file)
        gateway = Gateway(gw_box, server.url, {"SANDPOOL_DISPATCH_BACKLOG_TIMEOUT": "20"})
        workers = [Worker(a, "performance", gateway.url), Worker(b, "default", gateway.url)]
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            for w in workers:
                w.registered()
            yield Cluster(gateway, workers[0], workers[1], client)
        finally:
            codes = [w.stop() for w in workers]
            gw_code = gateway.stop()
            client.close()
            server.stop()
            left = [x for box in (gw_box, a, b) for x in box.leftovers()]
            for box in (gw_box, a, b):
                box.remove_parent_cgroups()
            assert codes == [0, 0], [w.text()[-2000:] for w in workers]
            assert gw_code == 0, gateway.text()[-2000:]
            assert not left, f"leaked: {left}"


def _until(check: Callable[[], bool], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _post(cluster: Cluster, path: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{cluster.gateway.url}/dashboard/{path}", headers=headers, timeout=120,
                      follow_redirects=False)  # fmt: skip


def _page(cluster: Cluster, path: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{cluster.gateway.url}/dashboard/{path}", headers=headers, timeout=60)


def _state_on_page(cluster: Cluster, sandbox_id: str, headers: dict[str, str]) -> str:
    page = _page(cluster, f"sandboxes/{sandbox_id}", headers)
    assert page.status_code == 200, page.text
    found = re.search(r'id="state">([a-z]+)<', page.text)
    assert found, page.text
    return found.group(1)


def _execs_shown(cluster: Cluster, sb: Sandbox, headers: dict[str, str]) -> None:
    """The sandbox page lists its execs; their output shows, live while one runs."""
    done = sb.exec(["sh", "-c", "echo ended-output; exit 3"])
    live = sb.exec_stream(["sh", "-c", "echo live-output; sleep 4"])
    page = _page(cluster, f"sandboxes/{sb.id}", headers).text
    assert f'id="exec-{done.exec_id}"' in page and "exit 3" in page, page
    assert f'id="exec-{live.id}"' in page, page
    ended = _page(cluster, f"sandboxes/{sb.id}/execs/{done.exec_id}", headers).text
    assert "ended-output" in ended and 'data-done="yes"' in ended, ended
    _until(lambda: "live-output" in _page(cluster, f"sandboxes/{sb.id}/execs/{live.id}",
                                          headers).text, 30)  # fmt: skip
    running = _page(cluster, f"sandboxes/{sb.id}/execs/{live.id}", headers).text
    assert 'data-done="no"' in running, running
    assert live.wait().exit_code == 0


def test_the_workers_and_pool_health_are_the_registered_workers(cluster: Cluster) -> None:
    page = _page(cluster, "workers", {"Authorization": f"Bearer {ADMIN}"})
    assert page.status_code == 200, page.text
    assert cluster.runc.address in page.text and cluster.gvisor.address in page.text
    assert "in the server process" not in page.text  # a gateway runs no sandboxes itself
    for pool, worker in (("performance", cluster.runc), ("default", cluster.gvisor)):
        health = _page(cluster, f"pools/{pool}/doctor", {"Authorization": f"Bearer {ADMIN}"})
        assert health.status_code == 200, health.text  # the workers' checks, not the gateway's
        assert f"at {worker.address}: runtime check passed" in health.text, health.text


@pytest.mark.parametrize(("pool", "runtime"), [("performance", "runc"), ("default", "gvisor")])
def test_dashboard_actions_act_on_the_worker_through_the_gateway(cluster: Cluster, pool: str,
                                                                runtime: str) -> None:  # fmt: skip
    mine, other = cluster.key(f"dash-{pool}"), cluster.key(f"other-{pool}")
    key = mine["Authorization"].removeprefix("Bearer ")
    worker, admin = cluster.worker(pool), {"Authorization": f"Bearer {ADMIN}"}
    with Sandbox.create(pool=pool, url=cluster.gateway.url, api_key=key, timeout=300) as sb:
        _execs_shown(cluster, sb, mine)
        page = _page(cluster, f"sandboxes/{sb.id}", mine)
        assert f"<dt>Runtime</dt><dd>{runtime}" in page.text  # the worker's live view
        assert 'id="usage"' in page.text and 'id="pause"' in page.text
        assert _page(cluster, f"sandboxes/{sb.id}/pause", mine).status_code == 200  # confirm
        paused = _post(cluster, f"sandboxes/{sb.id}/pause", mine)
        assert paused.status_code == 303, paused.text
        assert cluster.held_by(worker, sb.id) == "paused"
        assert _state_on_page(cluster, sb.id, mine) == "paused"
        refused = _post(cluster, f"sandboxes/{sb.id}/terminate", other)  # another tenant's
        assert refused.status_code == 404 and "no sandbox with id" in refused.text
        assert cluster.held_by(worker, sb.id) == "paused"
        assert _post(cluster, f"sandboxes/{sb.id}/resume", admin).status_code == 303
        assert cluster.held_by(worker, sb.id) == "running"
        assert sb.exec(["true"]).exit_code == 0
        ended = _post(cluster, f"sandboxes/{sb.id}/terminate", mine)
        assert ended.status_code == 303, ended.text
        assert cluster.held_by(worker, sb.id) in (None, "terminated")
        assert sb.refresh().state == "terminated"
        assert _state_on_page(cluster, sb.id, mine) == "terminated"
        again = _post(cluster, f"sandboxes/{sb.id}/pause", mine)
        assert again.status_code == 409 and "has ended" in again.text, again.text
        with pytest.raises(Conflict):
            sb.exec(["true"])
    with Client(cluster.gateway.url, key) as client:
        usage = client.me().usage
        assert usage is not None and usage["concurrent"] == 0  # the quota came back


def _cells(cluster: Cluster, pool: str, headers: dict[str, str]) -> list[str]:
    """The pool's row on the pools page: runtime, RuntimeClass, limits, warm pool, live
    sandboxes, doctor (after the pool's name)."""
    page = _page(cluster, "pools", headers)
    assert page.status_code == 200, page.text
    row = re.search(rf'\?pool={pool}">.*?</tr>', page.text, re.S)
    assert row, page.text
    return [str(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)]


def _live_cell(cluster: Cluster, pool: str, headers: dict[str, str]) -> str:
    return _cells(cluster, pool, headers)[4]


def test_the_pools_page_and_metrics_count_the_sandboxes_the_workers_run(cluster: Cluster) -> None:
    mine, other = cluster.key("counted"), cluster.key("uncounted")
    key = mine["Authorization"].removeprefix("Bearer ")
    gauge = "sandpool_sandboxes"
    with Sandbox.create(pool="default", url=cluster.gateway.url, api_key=key) as sb:
        assert "running 1" in _live_cell(cluster, "default", mine)
        assert "running" not in _live_cell(cluster, "default", other)
        assert _samples(cluster, gauge)[frozenset({"pool": "default", "state": "running"}.items())]
        sb.terminate()
    assert "running" not in _live_cell(cluster, "default", mine)
    running = frozenset({"pool": "default", "state": "running"}.items())
    assert _samples(cluster, gauge).get(running, 0) == 0
    page = _page(cluster, "pools", mine).text
    latency = re.search(r'<figure id="chart-latency">(.*?)</figure>', page, re.S)
    assert latency and "no data yet" not in latency.group(1) and "<rect" in latency.group(1)
    _until(lambda: _warm_ready(cluster) >= 1)  # the runc worker's warm sandbox, as reported
    _until(lambda: "size 1, 1 ready" in _cells(cluster, "performance", mine)[3], 30)


Samples = dict[frozenset[tuple[str, str]], float]


def _samples(cluster: Cluster, name: str) -> Samples:
    text = httpx.get(f"{cluster.gateway.url}/metrics", timeout=30).text
    return {frozenset(s.labels.items()): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}  # fmt: skip


def _added(now: Samples, then: Samples, **labels: str) -> float:
    key = frozenset(labels.items())
    return now.get(key, 0.0) - then.get(key, 0.0)


def _warm_ready(cluster: Cluster) -> int:
    """Warm sandboxes the runc worker reports ready (its heartbeat, in the registry)."""
    for worker in map(str, cluster.redis.smembers("sp:workers")):
        if "performance" in str(cluster.redis.hget(f"sp:w:{worker}", "spec") or ""):
            return int(str(cluster.redis.hget(f"sp:w:{worker}", "warm") or 0))
    return 0


def test_the_gateway_counts_its_creates_and_runs(cluster: Cluster) -> None:
    creates, runs = "sandpool_sandbox_creates_total", "sandpool_runs_total"
    timed = "sandpool_sandbox_create_duration_seconds_count"
    before, runs_before, timed_before = (_samples(cluster, n) for n in (creates, runs, timed))
    headers = cluster.key("metered")
    key = headers["Authorization"].removeprefix("Bearer ")
    _until(lambda: _warm_ready(cluster) >= 1)
    url = cluster.gateway.url
    with Sandbox.create(pool="performance", url=url, api_key=key) as warm, \
            Sandbox.create(pool="default", url=url, api_key=key) as cold:  # fmt: skip
        with pytest.raises(QuotaExceeded):  # the quota is 2 sandboxes
            Sandbox.create(pool="default", url=url, api_key=key)
        assert warm.exec(["true"]).exit_code == cold.exec(["true"]).exit_code == 0
    with Client(cluster.gateway.url, key) as client:
        assert client.run(["sh", "-c", "exit 3"], pool="performance").exit_code == 3
    after, runs_after, timed_after = (_samples(cluster, n) for n in (creates, runs, timed))
    assert _added(after, before, pool="performance", outcome="ok", source="warm") == 1, after
    assert _added(after, before, pool="default", outcome="ok", source="cold") == 1, after
    assert _added(after, before, pool="default", outcome="refused", source="none") == 1, after
    assert _added(runs_after, runs_before, pool="performance", exit_class="nonzero") == 1
    assert _added(timed_after, timed_before, pool="default", source="cold") == 1, timed_after


@pytest.mark.parametrize("pool", ["performance", "default"])
def test_wrong_state_answers_through_the_gateway(cluster: Cluster, pool: str) -> None:
    key = cluster.key(f"states-{pool}")["Authorization"].removeprefix("Bearer ")
    assert_state_errors(cluster.gateway.url, key, pool)
