"""Redis + a gateway + workers as real processes: a create for each pool lands on a worker of
that pool and runs there (checked from inside: gVisor's kernel vs the host's); execs and
files go through the gateway's proxy; a worker whose runtime check fails gets no work;
nothing leaks on any worker."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip

HOST_KERNEL = os.uname().release
BROKEN = "    broken:\n      containerRuntime: gvisor\n      containerRuntimeConfig:\n" \
         "        gvisorRoot: /nonexistent/gvisor-root\n"  # fmt: skip


@dataclass
class Cluster:
    redis: RedisServer
    gateway: Gateway
    runc: Worker
    gvisor: Worker
    broken: Worker


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        gw_box, a, b = (box_of(base, n) for n in ("gw", "a", "b"))
        c = box_of(base, "c", BROKEN)
        c.config_file.write_text(c.config_file.read_text().replace(
            "  pools:", "  runscPath: /nonexistent/runsc\n  pools:"))  # fmt: skip
        env = {"SANDPOOL_DISPATCH_BACKLOG_TIMEOUT": "4"}
        gateway = Gateway(gw_box, redis.url, env)
        workers = [Worker(a, "performance", gateway.url), Worker(b, "default", gateway.url),
                   Worker(c, "broken", gateway.url)]  # fmt: skip
        try:
            for w in workers:
                w.registered()
            yield Cluster(redis, gateway, *workers)
        finally:
            codes = [w.stop() for w in workers]
            gateway.stop()
            redis.stop()
            left = [x for box in (a, b, c) for x in box.leftovers()]
            for box in (a, b, c):
                box.remove_parent_cgroups()
            assert codes == [0, 0, 0], [w.text()[-2000:] for w in workers]
            assert not left, f"leaked: {left}"


def test_a_create_lands_on_a_worker_of_its_pool_and_execs_go_through_the_proxy(
        cluster: Cluster) -> None:  # fmt: skip
    gw = cluster.gateway
    made = {}
    for pool, worker in (("performance", cluster.runc), ("default", cluster.gvisor)):
        answer = gw.create(pool)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["address"] == worker.address
        assert body["sandbox"]["pool"] == pool and body["sandbox"]["state"] == "running"
        made[pool] = body["sandbox"]["id"]
    code, runc_kernel = gw.exec(made["performance"], "uname", "-r")
    assert (code, runc_kernel.strip()) == (0, HOST_KERNEL)
    code, gvisor_kernel = gw.exec(made["default"], "uname", "-r")
    assert code == 0 and gvisor_kernel.strip() != HOST_KERNEL  # gVisor's own (4.4.0)
    assert gw.exec(made["default"], "sh", "-c", "exit 3")[0] == 3
    for pool, sandbox_id in made.items():
        data = os.urandom(300_000)
        put = gw.client.put(f"/sandboxes/{sandbox_id}/files", params={"path": "/tmp/blob"},
                            content=data)  # fmt: skip
        assert put.status_code == 200 and put.json() == {"bytes": len(data)}, (pool, put.text)
        got = gw.client.get(f"/sandboxes/{sandbox_id}/files", params={"path": "/tmp/blob"})
        assert got.status_code == 200 and got.content == data
        missing = gw.client.get(f"/sandboxes/{sandbox_id}/files", params={"path": "/nope"})
        assert missing.status_code == 400 and "nope" in missing.json()["message"]
        ended = gw.client.delete(f"/sandboxes/{sandbox_id}")
        assert ended.status_code == 200 and ended.json()["state"] == "terminated"


def test_the_worker_token_guards_both_ends(cluster: Cluster) -> None:
    assert httpx.post(f"{cluster.gateway.url}/internal/v1/sandboxes",
                      json={"pool": "performance"}).status_code == 401  # fmt: skip
    bad = {"authorization": "Bearer nope"}
    assert httpx.get(f"{cluster.runc.address}/internal/v1/sandboxes/x",
                     headers=bad).status_code == 401  # fmt: skip
    assert httpx.get(f"{cluster.runc.address}/healthz").status_code == 200


def test_a_worker_whose_runtime_check_failed_is_never_given_work(cluster: Cluster) -> None:
    answer = cluster.gateway.create("broken")
    assert answer.status_code == 503, answer.text
    assert "no worker of pool 'broken' took the sandbox within 4 s" in answer.json()["message"]
    assert "runtime check" in cluster.broken.text() and "FAILED" in cluster.broken.text()
    assert "request" not in cluster.broken.text().split("registered with")[-1]


def test_an_unknown_pool_waits_then_fails_clearly(cluster: Cluster) -> None:
    answer = cluster.gateway.create("nosuchpool")
    assert answer.status_code == 503
    assert "no worker of pool 'nosuchpool'" in answer.json()["message"]


def test_a_gateway_killed_mid_stream_the_client_resumes_through_another(
        cluster: Cluster, tmp_path: Path) -> None:  # fmt: skip
    gw = cluster.gateway
    made = gw.create("performance")
    assert made.status_code == 201, made.text
    sandbox_id = made.json()["sandbox"]["id"]
    extra_box = box_of(Path(str(cluster.runc.box.base.parent)), "gw2")
    other = Gateway(extra_box, cluster.redis.url)  # a second replica on the same Redis
    script = "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.4; done"
    started = other.client.post(f"/sandboxes/{sandbox_id}/execs",
                                json={"argv": ["sh", "-c", script]})  # fmt: skip
    assert started.status_code == 200, started.text
    exec_id = started.json()["execId"]
    events = f"/sandboxes/{sandbox_id}/execs/{exec_id}/events"
    got = b""
    with pytest.raises(httpx.HTTPError), other.client.stream("GET", events) as answer:
        for line in answer.iter_lines():
            event = json.loads(line)
            if event["type"] == "stdout":
                got += base64.b64decode(event["data"])
            if got.count(b"\n") == 2:
                other.proc.kill()  # SIGKILL, mid-stream
    other.proc.wait()
    assert got == b"line1\nline2\n"
    rest = gw.client.get(events, params={"stdoutFrom": len(got)})  # through the first one
    lines = [json.loads(x) for x in rest.text.splitlines()]
    got += b"".join(base64.b64decode(x["data"]) for x in lines if x["type"] == "stdout")
    assert got == b"".join(f"line{i}\n".encode() for i in range(1, 9))  # each line once
    assert lines[-1]["type"] == "result" and lines[-1]["exitCode"] == 0
    assert gw.client.delete(f"/sandboxes/{sandbox_id}").status_code == 200
