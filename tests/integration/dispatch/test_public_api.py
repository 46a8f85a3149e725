"""The public sandbox API through a gateway (``sandpool server --redis``) with a runc worker
and a gVisor worker as real processes: the SDK's ``Sandbox.create(pool=...)`` lands on a
worker of that pool (the sandbox is on that worker, not the gateway; kernel checked
inside), execs (streams, resumed offsets, stdin, kill) and files go through the gateway to
it, terminate ends it there and gives the quota back; two tenants are kept apart; the
tenant's quota is admitted at the gateway; a sandbox lost with its worker ends
(``worker_lost``) and gives its share back; nothing leaks on any process."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandpool.client import Client, Conflict, NotFound, QuotaExceeded, Sandbox
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import AUTH, Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip

HOST_KERNEL = os.uname().release
ADMIN = "sp_admin_" + "x" * 32  # the Gateway fixture's admin key
GATEWAY = "gateway:\n  maxUploadSize: 1Mi\n  tenantQuota: {concurrent: 2, createsPerSecond: 100}\n"


@dataclass
class Cluster:
    gateway: Gateway
    runc: Worker
    gvisor: Worker

    def key(self, tenant: str) -> str:
        with Client(self.gateway.url, ADMIN) as admin:
            admin.create_tenant(tenant)
            return admin.create_key(tenant).key

    def held_by(self, worker: Worker, sandbox_id: str) -> str | None:
        """The sandbox's state on ``worker`` (None: that worker does not have it)."""
        answer = httpx.get(f"{worker.address}/internal/v1/sandboxes/{sandbox_id}",
                           headers=AUTH, timeout=30)  # fmt: skip
        return str(answer.json()["state"]) if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        gw_box, a, b = box_of(base, "gw"), box_of(base, "a"), box_of(base, "b")
        gw_box.config_file.write_text(gw_box.config_file.read_text() + GATEWAY)
        gateway = Gateway(gw_box, redis.url, {"SANDPOOL_DISPATCH_BACKLOG_TIMEOUT": "10"})
        workers = [Worker(a, "performance", gateway.url), Worker(b, "default", gateway.url)]
        try:
            for w in workers:
                w.registered()
            yield Cluster(gateway, workers[0], workers[1])
        finally:
            codes = [w.stop() for w in workers]
            gw_code = gateway.stop()
            redis.stop()
            left = [x for box in (gw_box, a, b) for x in box.leftovers()]
            for box in (gw_box, a, b):
                box.remove_parent_cgroups()
            assert codes == [0, 0], [w.text()[-2000:] for w in workers]
            assert gw_code == 0, gateway.text()[-2000:]
            assert not left, f"leaked: {left}"


def _usage(cluster: Cluster, key: str) -> int:
    with Client(cluster.gateway.url, key) as client:
        usage = client.me().usage
        assert usage is not None
        return int(usage["concurrent"])


def test_sdk_sandboxes_run_on_the_worker_of_their_pool(cluster: Cluster) -> None:
    key = cluster.key("alpha")
    url = cluster.gateway.url
    for pool, worker, other in (("performance", cluster.runc, cluster.gvisor),
                                ("default", cluster.gvisor, cluster.runc)):  # fmt: skip
        with Sandbox.create(pool=pool, url=url, api_key=key, timeout=300) as sb:
            assert cluster.held_by(worker, sb.id) == "running"
            assert cluster.held_by(other, sb.id) is None
            kernel = sb.exec(["uname", "-r"]).stdout.decode().strip()
            assert (kernel == HOST_KERNEL) == (pool == "performance"), kernel
            sb.files.write("/tmp/in.bin", bytes(range(256)) * 1000)
            assert sb.files.read("/tmp/in.bin") == bytes(range(256)) * 1000
            assert sb.files.stat("/tmp/in.bin").size == 256_000
            assert "in.bin" in [f.name for f in sb.files.list("/tmp")]
            assert sb.exec(["cat"], stdin="from stdin").stdout == b"from stdin"
            assert _usage(cluster, key) == 1
            ended = sb.terminate()
            assert ended.state == "terminated"
            assert cluster.held_by(worker, sb.id) in (None, "terminated")
            with pytest.raises(Conflict):
                sb.exec(["true"])
        assert _usage(cluster, key) == 0


def test_exec_streams_resume_and_kill_through_the_gateway(cluster: Cluster) -> None:
    key = cluster.key("beta")
    with Sandbox.create(pool="default", url=cluster.gateway.url, api_key=key) as sb, \
            httpx.Client(base_url=cluster.gateway.url, timeout=60,
                         headers={"Authorization": f"Bearer {key}"}) as http:  # fmt: skip
        done = sb.exec_stream(["sh", "-c", "printf 0123456789"])
        assert done.wait().stdout == b"0123456789"
        path = f"/v1/sandboxes/{sb.id}/execs/{done.id}/events"
        lines = [json.loads(x) for x in http.get(path, params={"stdout_offset": 4}).text.split()]
        out = [x for x in lines if x["type"] == "stdout"]
        assert out[0]["offset"] == 4 and lines[-1]["type"] == "exit", lines
        sleeper = sb.exec_stream(["sleep", "120"])
        sleeper.kill()
        assert sleeper.wait().exit_code == 137
        too_big = http.put(f"/v1/sandboxes/{sb.id}/files/content", params={"path": "/tmp/x"},
                           content=b"x" * (2 << 20))  # fmt: skip
        assert too_big.status_code == 413, too_big.text


def test_tenants_are_kept_apart_and_quotas_admitted_at_the_gateway(cluster: Cluster) -> None:
    own, other = cluster.key("gamma"), cluster.key("delta")
    url = cluster.gateway.url
    first = Sandbox.create(pool="performance", url=url, api_key=own)
    second = Sandbox.create(pool="performance", url=url, api_key=own)
    try:
        with pytest.raises(QuotaExceeded):
            Sandbox.create(pool="performance", url=url, api_key=own)
        with pytest.raises(NotFound):
            Sandbox.connect(first.id, url=url, api_key=other)
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {other}"}) as http:  # fmt: skip
            base = f"/v1/sandboxes/{first.id}"
            calls = [http.post(f"{base}/execs", json={"command": ["id"]}),
                     http.get(f"{base}/files/content", params={"path": "/etc/hostname"}),
                     http.get(f"{base}/files", params={"path": "/"}),
                     http.post(f"{base}/pause"), http.delete(base)]  # fmt: skip
            assert [c.status_code for c in calls] == [404] * 5, [c.text for c in calls]
            assert http.get("/v1/sandboxes").json() == []
        assert cluster.held_by(cluster.runc, first.id) == "running"
    finally:
        first.terminate()
        second.terminate()
        first.close()
        second.close()
    assert _usage(cluster, own) == 0


def _worker_sample(worker: Worker, name: str, **labels: str) -> float:
    """One sample of the worker's own ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{worker.address}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_usage_through_the_gateway_and_the_workers_metrics(cluster: Cluster) -> None:
    """A sandbox's usage is its worker's reading, forwarded; the worker's /metrics counts its
    sandboxes and the execs run there."""
    own, other = cluster.key("epsilon"), cluster.key("zeta")
    execs = _worker_sample(cluster.runc, "sandpool_execs_total", pool="performance",
                           exit_class="ok")  # fmt: skip
    with Sandbox.create(pool="performance", url=cluster.gateway.url, api_key=own) as sb:
        start = sb.refresh().usage
        assert start is not None and start.disk_used_bytes is not None
        write = ["dd", "if=/dev/urandom", "of=/big.bin", "bs=1M", "count=20", "conv=fsync"]
        assert sb.exec(write).exit_code == 0
        grown = sb.refresh().usage
        assert grown is not None and grown.disk_used_bytes is not None
        assert grown.disk_used_bytes >= start.disk_used_bytes + 19 * 1024 * 1024
        assert (grown.cpu_seconds or 0) > 0 and (grown.memory_peak_bytes or 0) > 0
        with pytest.raises(NotFound):
            Sandbox.connect(sb.id, url=cluster.gateway.url, api_key=other)
        assert _worker_sample(cluster.runc, "sandpool_sandboxes", pool="performance",
                              state="running") >= 1  # fmt: skip
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and _worker_sample(
                cluster.runc, "sandpool_execs_total", pool="performance", exit_class="ok"
            )
            < execs + 1
        ):
            time.sleep(0.2)
        assert _worker_sample(cluster.runc, "sandpool_execs_total", pool="performance",
                              exit_class="ok") == execs + 1  # fmt: skip
    assert sb.info.usage is None  # ended: nothing to read


def test_a_sandbox_lost_with_its_worker_ends_and_gives_its_quota_back() -> None:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        gw_box, box = box_of(base, "gw"), box_of(base, "w")
        gateway = Gateway(gw_box, redis.url)
        worker = Worker(box, "performance", gateway.url)
        try:
            worker.registered()
            key = Cluster(gateway, worker, worker).key("lost")
            sb = Sandbox.create(pool="performance", url=gateway.url, api_key=key)
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait()
            deadline = time.monotonic() + 60
            while sb.refresh().state != "terminated":
                assert time.monotonic() < deadline, gateway.text()[-2000:]
                time.sleep(0.5)
            assert sb.info.reason == "worker_lost"
            with pytest.raises(Conflict):
                sb.exec(["true"])
            with Client(gateway.url, key) as client:
                usage = client.me().usage
                assert usage is not None and usage["concurrent"] == 0
            sb.close()
        finally:
            worker.stop()
            worker.gc()  # what the killed worker left, as its next start would remove
            gw_code = gateway.stop()
            redis.stop()
            left = gw_box.leftovers() + box.leftovers()
            for b in (gw_box, box):
                b.remove_parent_cgroups()
        assert gw_code == 0, gateway.text()[-2000:]
        assert not left, f"leaked: {left}"
