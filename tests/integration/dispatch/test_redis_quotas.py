"""Tenant quotas in Redis (``RedisQuotas``) against a real redis-server: admissions from
several "gateways" at once never overshoot, a lease is given back exactly once, a lease of a
sandbox the dispatch records ended (or lost with its worker) and an unbound lease of a dead
gateway come back at the reconcile."""

from __future__ import annotations

import threading
import time

import pytest

from sandpool.dispatch.broker import Broker
from sandpool.dispatch.models import Demand, Resources, WorkerSpec
from sandpool.dispatch.redis_quotas import RedisQuotas
from sandpool.errors import InvalidRequest, QuotaExceeded
from sandpool.service.quotas import Quota

QUOTA = Quota(concurrent=5, cpu=100.0, memory=2**40, creates_per_second=1000.0)


def _admit_all(gateways: list[RedisQuotas], tries: int) -> tuple[list[object], list[str]]:
    admitted: list[object] = []
    refused: list[str] = []
    lock = threading.Lock()

    def one(quotas: RedisQuotas) -> None:
        try:
            lease = quotas.admit("t1", QUOTA, 0.5, 2**20)
        except QuotaExceeded as exc:
            with lock:
                refused.append(exc.reason or "")
            return
        with lock:
            admitted.append(lease)

    threads = [threading.Thread(target=one, args=(gateways[i % len(gateways)],))
               for i in range(tries)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return admitted, refused


def test_concurrent_admissions_from_two_gateways_never_overshoot(broker: Broker) -> None:
    gateways = [RedisQuotas(broker, "g-a"), RedisQuotas(broker, "g-b")]
    admitted, refused = _admit_all(gateways, 40)
    assert len(admitted) == 5 and refused == ["concurrent"] * 35
    usage = gateways[1].usage("t1")
    assert (usage.count, usage.cpu, usage.memory) == (5, 2.5, 5 * 2**20)
    for lease in admitted:
        lease.release()  # type: ignore[attr-defined]
        lease.release()  # type: ignore[attr-defined]  # the second one does nothing
    assert gateways[0].usage("t1").count == 0
    assert gateways[0].usage("t1").memory == 0


def test_cpu_memory_and_rate_refusals_carry_retry_after(broker: Broker) -> None:
    quotas = RedisQuotas(broker, "g-a")
    small = Quota(concurrent=10, cpu=2.0, memory=2**30, creates_per_second=1000.0)
    quotas.admit("t2", small, 1.5, 2**20)
    with pytest.raises(QuotaExceeded) as cpu:
        quotas.admit("t2", small, 1.0, 2**20)
    assert cpu.value.reason == "cpu" and "1.5 of 2 cores" in cpu.value.message
    with pytest.raises(QuotaExceeded) as memory:
        quotas.admit("t2", small, 0.1, 2**30)
    assert memory.value.reason == "memory"
    with pytest.raises(InvalidRequest):
        quotas.admit("t2", small, 3.0, 1)
    slow = Quota(concurrent=10, cpu=10.0, memory=2**30, creates_per_second=0.5)
    quotas.admit("t3", slow, 0.1, 1)
    with pytest.raises(QuotaExceeded) as rate:
        quotas.admit("t3", slow, 0.1, 1)
    assert rate.value.reason == "rate" and 1.0 < (rate.value.retry_after or 0) <= 2.0


def test_a_bound_lease_comes_back_when_its_sandbox_ends_or_is_lost(broker: Broker) -> None:
    quotas = RedisQuotas(broker, "g-a")
    spec = WorkerSpec("default", "http://127.0.0.1:1", Resources(8000, 2**34, 0, 8))
    assert broker.register("w1", spec) == "ok"
    made: list[str] = []
    for _ in range(2):  # two sandboxes made on w1 through the dispatch
        request_id = f"r{len(made)}"
        broker.submit(request_id, Demand("default", Resources(1000, 2**20, 0, 1)), {})
        broker.place()
        (delivery,) = broker.pull("w1")
        sandbox_id = f"sbx-{request_id}"
        assert broker.ack("w1", delivery, {"ok": True}, sandbox_id=sandbox_id, pool="default")
        lease = quotas.admit("t4", QUOTA, 1.0, 2**20)
        lease.bind(sandbox_id)
        made.append(sandbox_id)
    assert quotas.reconcile() == [] and quotas.usage("t4").count == 2
    broker.release("w1", made[0], "terminated", "killed")  # its worker reports it ended
    assert len(quotas.reconcile()) == 1 and quotas.usage("t4").count == 1
    time.sleep(1.2)  # w1's lease (1 s) runs out: the reaper declares its sandboxes lost
    assert broker.reap().lost_sandboxes == [made[1]]
    assert len(quotas.reconcile()) == 1 and quotas.usage("t4").count == 0


def test_an_unbound_lease_of_a_dead_gateway_comes_back(broker: Broker) -> None:
    dead, alive = RedisQuotas(broker, "g-dead"), RedisQuotas(broker, "g-alive")
    dead.admit("t5", QUOTA, 1.0, 1)  # admitted, then the gateway died before placing it
    kept = alive.admit("t5", QUOTA, 1.0, 1)
    assert alive.reconcile() == [] and alive.usage("t5").count == 2
    time.sleep(1.2)  # g-dead's heartbeat (the dispatch lease, 1 s here) ran out
    assert len(alive.reconcile()) == 1
    assert alive.usage("t5").count == 1
    kept.release()
    assert alive.usage("t5").count == 0


def test_restore_counts_a_running_sandbox_once(broker: Broker) -> None:
    quotas = RedisQuotas(broker, "g-a")
    lease = quotas.admit("t6", QUOTA, 1.0, 1)
    lease.bind("sbx-1")
    again = RedisQuotas(broker, "g-b").restore("t6", 1.0, 1, "sbx-1")
    assert again.id == lease.id and quotas.usage("t6").count == 1
    RedisQuotas(broker, "g-c").restore("t6", 1.0, 1, "sbx-2")  # Redis forgot it: counted
    assert quotas.usage("t6").count == 2
