"""Two gateways over one Redis (and one database) with real workers: a tenant's quota is one
count across both (concurrent creates from both never overshoot; every lease comes back after
terminate, and when the worker holding a sandbox is lost); a one-shot ``POST /v1/runs`` on a
gateway runs on a worker of the pool (kernel checked inside, the dispatch's record names the
worker; exit code and timeout kept); placement prefers the runc worker with a ready warm
sandbox over the tighter fit; a gateway SIGKILLed in the middle of an exec's output stream:
the SDK, behind a stand-in load balancer (``forwarder``), resumes the stream through another
gateway and gets every byte once. Nothing leaks on any process."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from sandpool.client import Client, QuotaExceeded, Sandbox
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.forwarder import Forwarder
from tests.integration.dispatch.processes import Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip

HOST_KERNEL = os.uname().release
ADMIN = "sp_admin_" + "x" * 32  # the Gateway fixture's admin key
QUOTA = 3
GATEWAY = f"gateway:\n  tenantQuota: {{concurrent: {QUOTA}, createsPerSecond: 1000}}\n"
WARM = "      containerRuntime: runc\n      warmPool: {size: 1}\n"


@dataclass
class Cluster:
    gateways: list[Gateway]
    warm: Worker  # runc, 8 slots, a warm pool of 1
    tight: Worker  # runc, 2 slots: the best fit
    gvisor: Worker
    redis: redis.Redis
    redis_url: str

    def key(self, tenant: str) -> str:
        with Client(self.gateways[0].url, ADMIN) as admin:
            admin.create_tenant(tenant)
            return admin.create_key(tenant).key

    def worker_ids(self) -> dict[str, str]:
        """Worker address -> its id in the registry."""
        found = {}
        for wid in self.redis.smembers("sp:workers"):
            spec = self.redis.hget(f"sp:w:{wid}", "spec")
            if spec:
                found[json.loads(spec)["address"]] = str(wid)
        return found

    def holder(self, sandbox_id: str) -> str | None:
        """The address of the worker the dispatch records holding the sandbox."""
        return self.redis.hget(f"sp:s:{sandbox_id}", "address")


def _with_warm_pool(path: Path) -> None:
    text = path.read_text()
    path.write_text(text.replace("      containerRuntime: runc\n", WARM, 1))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        server = RedisServer(Path(redis_dir))
        boxes = [box_of(base, n) for n in ("g1", "g2", "warm", "tight", "gvisor")]
        for gw_box in boxes[:2]:
            gw_box.config_file.write_text(gw_box.config_file.read_text() + GATEWAY)
            _with_warm_pool(gw_box.config_file)  # so the gateways know the warm template
        _with_warm_pool(boxes[2].config_file)
        shared = ["--database", f"sqlite:///{base}/service.db"]
        env = {"SANDPOOL_DISPATCH_BACKLOG_TIMEOUT": "20"}
        gateways = [Gateway(boxes[0], server.url, env, shared)]
        gateways.append(Gateway(boxes[1], server.url, env, shared))
        url = gateways[0].url
        workers = [Worker(boxes[2], "performance", url), Worker(boxes[3], "performance", url,
                   sandboxes=2), Worker(boxes[4], "default", gateways[1].url)]  # fmt: skip
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            for w in workers:
                w.registered()
            yield Cluster(gateways, *workers, client, server.url)
        finally:
            codes = [w.stop() for w in workers]
            gw_codes = [g.stop() for g in gateways]
            client.close()
            server.stop()
            workers[1].gc()  # the test that SIGKILLs it leaves its sandbox: a restart's gc
            left = [x for box in boxes for x in box.leftovers()]
            for box in boxes:
                box.remove_parent_cgroups()
            assert codes[0] == 0 and codes[2] == 0, [w.text()[-2000:] for w in workers]
            assert gw_codes == [0, 0], [g.text()[-2000:] for g in gateways]
            assert not left, f"leaked: {left}"


def _usage(gateway: Gateway, key: str) -> int:
    with Client(gateway.url, key) as client:
        usage = client.me().usage
    assert usage is not None
    return int(usage["concurrent"])


def _until(check: Callable[[], bool], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_placement_prefers_the_worker_with_a_ready_warm_sandbox(cluster: Cluster) -> None:
    ids = cluster.worker_ids()
    warm_id = ids[cluster.warm.address]
    _until(lambda: int(cluster.redis.hget(f"sp:w:{warm_id}", "warm") or 0) >= 1, 60)
    assert int(cluster.redis.hget(f"sp:w:{ids[cluster.tight.address]}", "warm") or 0) == 0
    key = cluster.key("warmth")
    with Sandbox.create(pool="performance", url=cluster.gateways[1].url, api_key=key) as box:
        assert cluster.holder(box.id) == cluster.warm.address  # not the tighter fit
        assert box.exec(["true"]).exit_code == 0
    # a create the warm template does not match goes to the best fit, as before
    with Sandbox.create(pool="performance", memory="300Mi", url=cluster.gateways[0].url,
                        api_key=key) as box:  # fmt: skip
        assert cluster.holder(box.id) == cluster.tight.address


def test_concurrent_creates_from_two_gateways_never_overshoot_one_quota(cluster: Cluster) -> None:
    key = cluster.key("shared")
    made: list[Sandbox] = []
    refused: list[str] = []
    lock = threading.Lock()

    def create(gateway: Gateway) -> None:
        try:
            box = Sandbox.create(pool="performance", url=gateway.url, api_key=key)
        except QuotaExceeded as exc:
            with lock:
                refused.append(str(exc))
            return
        with lock:
            made.append(box)

    threads = [threading.Thread(target=create, args=(cluster.gateways[i % 2],))
               for i in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert len(made) == QUOTA and len(refused) == 8 - QUOTA, refused
        assert [_usage(g, key) for g in cluster.gateways] == [QUOTA, QUOTA]
    finally:
        for box in made:
            box.terminate()
    assert [_usage(g, key) for g in cluster.gateways] == [0, 0]
    assert cluster.redis.scard("sp:qleases") == 0  # every lease given back


def test_a_run_on_a_gateway_runs_on_a_worker_of_its_pool(cluster: Cluster) -> None:
    key = cluster.key("runner")
    with Client(cluster.gateways[0].url, key) as client:
        inside = client.run(["sh", "-c", "uname -r; cat; exit 3"], pool="default", stdin="in\n")
        kernel, rest = inside.stdout.decode().split("\n", 1)
        assert (inside.exit_code, rest, inside.container_runtime) == (3, "in\n", "gvisor")
        assert kernel != HOST_KERNEL  # gVisor's kernel
        host = client.run(["uname", "-r"], pool="performance")
        assert (host.exit_code, host.stdout.decode().strip()) == (0, HOST_KERNEL)
        slow = client.run(["sleep", "30"], pool="performance", timeout=1)
        assert slow.timed_out and slow.exit_code == 124
    runs = [cluster.redis.hgetall(k) for k in cluster.redis.scan_iter("sp:r:*")]
    by_worker = {r["worker"] for r in runs if r.get("kind") == "run"}
    ids = cluster.worker_ids()
    assert ids[cluster.gvisor.address] in by_worker  # the run went to the gVisor worker
    assert by_worker <= set(ids.values())
    assert _usage(cluster.gateways[1], key) == 0  # the runs' leases came back


def test_a_gateway_killed_mid_stream_the_sdk_resumes_through_another(cluster: Cluster) -> None:
    key = cluster.key("resume")
    base = cluster.gateways[0].log.parent.parent
    box = box_of(base, "g3")
    box.config_file.write_text(box.config_file.read_text() + GATEWAY)
    _with_warm_pool(box.config_file)
    doomed = Gateway(box, cluster.redis_url, {"SANDPOOL_DISPATCH_BACKLOG_TIMEOUT": "20"},
                     ["--database", f"sqlite:///{base}/service.db"])  # fmt: skip
    balancer = Forwarder(doomed.port)
    script = "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.4; done"
    try:
        with Sandbox.create(pool="performance", url=balancer.url, api_key=key) as sb:
            stream, got = sb.exec_stream(["sh", "-c", script]), b""
            for chunk in stream:
                got += chunk.data
                if got.count(b"\n") == 2 and doomed.proc.poll() is None:
                    balancer.target = cluster.gateways[0].port  # new connections go there
                    doomed.proc.send_signal(signal.SIGKILL)  # mid-stream
                    doomed.proc.wait()
            result = stream.wait()
            assert doomed.proc.returncode == -signal.SIGKILL  # it did die under the stream
            assert got == b"".join(f"line{i}\n".encode() for i in range(1, 9))  # each once
            assert result.exit_code == 0 and result.stdout == got
            assert sb.exec(["echo", "after"]).stdout == b"after\n"  # the other gateway serves
        # its lease was the dead gateway's: the reconcile gives it back once the sandbox ended
        _until(lambda: _usage(cluster.gateways[1], key) == 0, 10)
    finally:
        balancer.close()
        doomed.stop()
        left = box.leftovers()
        box.remove_parent_cgroups()
    assert not left, f"leaked: {left}"


def test_a_lease_of_a_sandbox_lost_with_its_worker_comes_back(cluster: Cluster) -> None:
    key = cluster.key("lost")
    box = Sandbox.create(pool="performance", memory="300Mi", url=cluster.gateways[0].url,
                         api_key=key)  # fmt: skip
    assert cluster.holder(box.id) == cluster.tight.address
    assert _usage(cluster.gateways[1], key) == 1
    cluster.tight.proc.send_signal(signal.SIGKILL)
    cluster.tight.proc.wait()
    _until(lambda: _usage(cluster.gateways[1], key) == 0)  # the other gateway sees it too
    assert _usage(cluster.gateways[0], key) == 0
    assert cluster.redis.scard("sp:qleases") == 0
