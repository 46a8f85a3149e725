"""Sandbox metrics and per-sandbox usage over real HTTP against a real ``sandpool server``:
``/metrics`` counts creates (warm hit or cold), execs by exit class (an OOM and a timeout
included) and the warm pools' claims, misses and refills; ``usage`` in a sandbox's answer
moves as it burns cpu, allocates memory and writes to its disk, on runc and gVisor; another
tenant's sandbox stays 404; a network change on a sandbox made without one says so."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandpool.client import Client, Conflict, NotFound, Sandbox
from tests.integration.conftest import Sandbox as Box
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.service.conftest import ServerProcess

pytestmark = [pytest.mark.root, pytest.mark.runc]
RUNC, WARM = "performance", "warm"
MiB = 1024 * 1024
# a second runc pool keeping one sandbox warm (64Mi: the OOM exec below runs in one)
POOLS = ("    warm:\n      containerRuntime: runc\n      warmPool:\n        size: 1\n"
         "gateway:\n  shutdownTimeout: 2\n"
         "  tenantQuota: {concurrent: 8, createsPerSecond: 100}\n")  # fmt: skip


@pytest.fixture(scope="module")
def metrics_box() -> Iterator[Box]:
    with reachable_tmp_dir() as base:
        box = Box(base)
        box.cgroup_parent = f"sandpool-svcmet-{os.getpid()}"
        box.write_config(POOLS)
        yield box
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not left, f"the service leaked: {left}"


@pytest.fixture(scope="module")
def server(metrics_box: Box) -> Iterator[ServerProcess]:
    process = ServerProcess(metrics_box)
    yield process
    assert process.stop() in (0, -15)


def tenant_key(server: ServerProcess, name: str) -> str:
    with server.client(server.admin_key) as admin:
        admin.create_tenant(name)
        return admin.create_key(name).key


def sample(server: ServerProcess, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def test_creates_and_execs_are_counted_by_outcome(server: ServerProcess) -> None:
    key = tenant_key(server, "counted")

    def execs(kind: str) -> float:
        return sample(server, "sandpool_execs_total", pool=RUNC, exit_class=kind)

    cold = sample(server, "sandpool_sandbox_creates_total", pool=RUNC, outcome="ok",
                  source="cold")  # fmt: skip
    timed = sample(server, "sandpool_sandbox_create_duration_seconds_count", pool=RUNC,
                   source="cold")  # fmt: skip
    before = {k: execs(k) for k in ("ok", "nonzero", "oom", "timeout")}
    with Sandbox.create(pool=RUNC, memory="64Mi", url=server.url, api_key=key) as sb:
        assert sample(server, "sandpool_sandbox_creates_total", pool=RUNC, outcome="ok",
                      source="cold") == cold + 1  # fmt: skip
        assert sample(server, "sandpool_sandbox_create_duration_seconds_count", pool=RUNC,
                      source="cold") == timed + 1  # fmt: skip
        assert sample(server, "sandpool_sandboxes", pool=RUNC, state="running") >= 1
        assert sb.exec(["true"]).exit_code == 0
        assert sb.exec(["sh", "-c", "exit 3"]).exit_code == 3
        slow = sb.exec(["sleep", "30"], timeout=0.5)
        assert slow.timed_out
        hog = sb.exec(["python3", "-c", "b = bytearray(256 * 1024 * 1024); print(len(b))"])
        assert hog.oom_killed, hog
        expected = {"ok": 1, "nonzero": 1, "timeout": 1, "oom": 1}
        counted = wait_for(lambda: all(execs(k) == before[k] + n for k, n in expected.items()))
        assert counted, {k: execs(k) - before[k] for k in expected}
    assert sample(server, "sandpool_exec_duration_seconds_count", pool=RUNC) >= 4
    # a create refused by the quota is counted as refused, not as a start
    refused = sample(server, "sandpool_sandbox_creates_total", pool=RUNC, outcome="refused",
                     source="none")  # fmt: skip
    with server.client(server.admin_key) as admin:
        admin.create_tenant("tiny", concurrent=0)
        tiny = admin.create_key("tiny").key
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tiny}"}) as c:
        assert c.post("/v1/sandboxes", json={"pool": RUNC}).status_code == 429
    assert sample(server, "sandpool_sandbox_creates_total", pool=RUNC, outcome="refused",
                  source="none") == refused + 1  # fmt: skip


def test_warm_pool_metrics_follow_claims_misses_and_refills(server: ServerProcess) -> None:
    key = tenant_key(server, "warmed")
    assert sample(server, "sandpool_warm_pool_size", pool=WARM) == 1
    with Client(server.url, key) as client:
        # any create starts the warm pools (an earlier test's may have)
        made = [Sandbox.create(pool=WARM, client=client)]
        assert wait_for(lambda: sample(server, "sandpool_warm_pool_ready", pool=WARM) == 1, 60)
        claims = sample(server, "sandpool_warm_pool_claims_total", pool=WARM)
        misses = sample(server, "sandpool_warm_pool_misses_total", pool=WARM)
        hits = sample(server, "sandpool_sandbox_creates_total", pool=WARM, outcome="ok",
                      source="warm")  # fmt: skip
        made.append(Sandbox.create(pool=WARM, client=client))
        assert sample(server, "sandpool_warm_pool_claims_total", pool=WARM) == claims + 1
        assert sample(server, "sandpool_sandbox_creates_total", pool=WARM, outcome="ok",
                      source="warm") == hits + 1  # fmt: skip
        made.append(Sandbox.create(pool=WARM, memory="96Mi", client=client))  # no match: cold
        assert sample(server, "sandpool_warm_pool_misses_total", pool=WARM) == misses + 1
        assert sample(server, "sandpool_warm_pool_refills_total", pool=WARM) >= 1
        assert sample(server, "sandpool_warm_pool_refill_seconds_count", pool=WARM) >= 1
        assert sample(server, "sandpool_warm_pool_refill_seconds_sum", pool=WARM) > 0
        # the refill after the claim: an idle warm sandbox again, its memory read
        assert wait_for(lambda: sample(server, "sandpool_warm_pool_ready", pool=WARM) == 1, 60)
        memory = sample(server, "sandpool_warm_sandbox_memory_bytes", pool=WARM)
        assert 64 * 1024 < memory < 512 * MiB, memory
        for sb in made:
            sb.terminate()


def usage_of(sb: Sandbox) -> Any:
    usage = sb.refresh().usage
    assert usage is not None, sb.info.raw
    return usage


@pytest.mark.parametrize("pool", [RUNC, pytest.param("default", marks=pytest.mark.runsc)])
def test_usage_moves_with_cpu_memory_and_disk(server: ServerProcess, pool: str) -> None:
    key, other = tenant_key(server, f"use-{pool}"), tenant_key(server, f"peek-{pool}")
    with Sandbox.create(pool=pool, url=server.url, api_key=key) as sb:
        start = usage_of(sb)
        assert None not in (start.cpu_seconds, start.memory_peak_bytes, start.disk_used_bytes)
        burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass"
        assert sb.exec(["python3", "-c", burn]).exit_code == 0
        # gVisor's clock inside and the host's cgroup differ: a fraction is plenty to tell
        assert usage_of(sb).cpu_seconds >= start.cpu_seconds + 0.3
        grow = "b = bytearray(96 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
        assert sb.exec(["python3", "-c", grow]).exit_code == 0
        assert usage_of(sb).memory_peak_bytes >= start.memory_peak_bytes + 64 * MiB
        # head, not dd: dd writes a short read as a short block (gVisor's urandom reads can
        # come short), and then less than 20 MiB lands
        write = ["sh", "-c", "head -c 20971520 /dev/urandom > /big.bin"]
        assert sb.exec(write).exit_code == 0
        assert sb.exec(["sync"]).exit_code == 0
        grown = wait_for(lambda: usage_of(sb).disk_used_bytes >= start.disk_used_bytes + 19 * MiB)
        assert grown, (start, usage_of(sb))
        listed = Sandbox.list(url=server.url, api_key=key)
        assert listed[0].id == sb.id and listed[0].usage is not None
        with pytest.raises(NotFound):
            Sandbox.connect(sb.id, url=server.url, api_key=other)
    assert sb.info.state == "terminated" and sb.info.usage is None


def test_a_network_change_without_a_network_says_it_is_chosen_at_create(
    server: ServerProcess,
) -> None:
    key = tenant_key(server, "nonet")
    with Sandbox.create(pool=RUNC, url=server.url, api_key=key) as sb:
        with pytest.raises(Conflict) as refused:
            sb.set_network("allow", ["10.0.0.1/32"])
        assert "created without a network" in str(refused.value)
        assert "could not start" not in str(refused.value)
        assert "chosen at create" in (refused.value.hint or "")
