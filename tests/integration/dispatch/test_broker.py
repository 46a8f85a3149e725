"""The dispatch library against a real redis-server: placement, delivery, acknowledgement,
lost workers, stale deliveries, the backlog's bound and deadline."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from sandpool.dispatch.broker import Broker, DispatchSettings
from sandpool.dispatch.models import Delivery, Demand, Resources, WorkerSpec
from sandpool.errors import BacklogFull
from tests.integration.dispatch.redis_server import RedisServer

GiB = 1 << 30


def spec(pool: str = "a", *, sandboxes: int = 10, ok: bool = True, priority: int = 0,
         selector: bool = False) -> WorkerSpec:  # fmt: skip
    return WorkerSpec(pool, "http://127.0.0.1:9", Resources(4000, 8 * GiB, 0, sandboxes),
                      priority=priority, requires_pool_selector=selector,
                      runtime_ok=ok)  # fmt: skip


def need(pool: str | None = "a") -> Demand:
    return Demand(pool, Resources(1000, GiB, 0, 1))


def submit(broker: Broker, pool: str | None = "a", timeout: float | None = None) -> str:
    rid = uuid.uuid4().hex
    broker.submit(rid, need(pool), {"pool": pool}, timeout=timeout)
    return rid


def take(broker: Broker, worker: str) -> list[Delivery]:
    return broker.pull(worker, count=100, block=0.2)


def test_a_request_reaches_a_worker_of_its_pool_and_its_outcome_any_gateway(
        broker: Broker, redis_server: RedisServer) -> None:  # fmt: skip
    broker.register("wa", spec("a"))
    broker.register("wb", spec("b"))
    rid = submit(broker, "b")
    assert broker.place() == 1
    assert take(broker, "wa") == []
    (got,) = take(broker, "wb")
    assert (got.request_id, got.attempt, got.payload) == (rid, 1, {"pool": "b"})
    assert broker.ack("wb", got, {"ok": True, "id": "s1"}, sandbox_id="s1", address="http://x",
                      pool="b")  # fmt: skip
    other_gateway = Broker.connect(redis_server.url)
    assert other_gateway.outcome(rid, 1) == {"ok": True, "id": "s1"}
    assert broker.outcome(rid, 1) == {"ok": True, "id": "s1"}  # still there for the next asker
    assert broker.sandbox("s1")["worker"] == "wb"
    assert take(broker, "wb") == []  # acknowledged: never delivered again


def test_requires_pool_selector_and_failed_runtime_checks(broker: Broker) -> None:
    broker.register("build", spec("build", selector=True))
    broker.register("broken", spec("a", ok=False))
    submit(broker, None)
    submit(broker, "a")
    assert broker.place() == 0
    assert take(broker, "build") == [] and take(broker, "broken") == []
    submit(broker, "build")
    assert broker.place() == 1 and len(take(broker, "build")) == 1


def test_capacity_is_reserved_and_given_back(broker: Broker) -> None:
    broker.register("w", spec(sandboxes=2))
    rids = [submit(broker) for _ in range(3)]
    assert broker.place() == 2
    first, second = take(broker, "w")
    assert {first.request_id, second.request_id} == set(rids[:2])
    broker.ack("w", first, {"ok": True}, sandbox_id="s1", address="http://x", pool="a")
    broker.ack("w", second, {"ok": False, "error": "boom"})  # a failed create gives it back
    assert broker.place() == 1
    (third,) = take(broker, "w")
    broker.ack("w", third, {"ok": True}, sandbox_id="s3", address="http://x", pool="a")
    submit(broker)
    assert broker.place() == 0  # full: s1 and s3 hold both slots
    assert broker.release("w", "s1", "terminated", "ttl")
    assert broker.sandbox("s1")["reason"] == "ttl"
    assert broker.place() == 1


def test_an_unacknowledged_delivery_is_delivered_again_to_the_same_worker(
        broker: Broker) -> None:  # fmt: skip
    broker.register("w", spec())
    rid = submit(broker)
    broker.place()
    (lost_answer,) = take(broker, "w")  # as if the long-poll answer never reached the worker
    (again,) = take(broker, "w")
    assert again.request_id == rid and again.attempt == lost_answer.attempt


def test_a_lost_worker_s_requests_run_elsewhere_once_and_its_sandboxes_are_lost(
        broker: Broker) -> None:  # fmt: skip
    broker.register("dies", spec(priority=9))
    broker.register("other", spec())
    running, taken, queued = submit(broker), submit(broker), submit(broker)
    assert broker.place() == 3  # all on "dies" (priority)
    deliveries = {d.request_id: d for d in take(broker, "dies")}
    assert set(deliveries) == {running, taken, queued}
    broker.ack("dies", deliveries[running], {"ok": True}, sandbox_id="s1", address="x", pool="a")
    deadline = time.monotonic() + 5
    report = broker.reap()
    while not report.lost_workers and time.monotonic() < deadline:
        broker.heartbeat("other")
        time.sleep(0.2)
        report = broker.reap()
    assert report.lost_workers == ["dies"]
    assert sorted(report.requeued) == sorted([taken, queued])
    assert report.lost_sandboxes == ["s1"]
    assert broker.sandbox("s1")["state"] == "terminated"
    assert broker.sandbox("s1")["reason"] == "worker_lost"
    assert broker.place() == 2
    moved = {d.request_id: d for d in take(broker, "other")}
    assert set(moved) == {taken, queued} and all(d.attempt == 2 for d in moved.values())
    # the dead worker's late acknowledgement is refused (it must undo), the new one counts
    assert not broker.ack("dies", deliveries[taken], {"ok": True}, sandbox_id="dup",
                          address="x", pool="a")  # fmt: skip
    assert broker.ack("other", moved[taken], {"ok": True, "by": "other"}, sandbox_id="s2",
                      address="x", pool="a")  # fmt: skip
    assert broker.outcome(taken, 1) == {"ok": True, "by": "other"}
    assert broker.heartbeat("dies") == "lost"
    assert broker.register("dies", spec()) == "lost"


def test_a_run_a_lost_worker_had_taken_fails_and_is_never_run_again(broker: Broker) -> None:
    """At most once: a one-shot run the lost worker took (it may have run in part) ends with
    a WorkerLost outcome; a run and a create it had not taken yet go back to the backlog."""
    broker.register("dies", spec(priority=9))
    broker.register("other", spec())
    started = uuid.uuid4().hex
    broker.submit(started, need(), {"pool": "a"}, "run")
    assert broker.place() == 1
    assert [d.request_id for d in take(broker, "dies")] == [started]  # taken: pending
    waiting, create = uuid.uuid4().hex, submit(broker)
    broker.submit(waiting, need(), {"pool": "a"}, "run")
    assert broker.place() == 2  # on "dies" too, never taken
    deadline = time.monotonic() + 5
    report = broker.reap()
    while not report.lost_workers and time.monotonic() < deadline:
        broker.heartbeat("other")
        time.sleep(0.2)
        report = broker.reap()
    assert report.lost_workers == ["dies"]
    assert report.lost_runs == [started]
    assert sorted(report.requeued) == sorted([waiting, create])
    outcome = broker.outcome(started, 1)
    assert outcome is not None and outcome["ok"] is False
    assert outcome["error"]["type"] == "WorkerLost", outcome
    assert "not started again" in outcome["error"]["message"]
    assert broker.place() == 2
    assert sorted(d.request_id for d in take(broker, "other")) == sorted([waiting, create])


def test_a_delivery_unacknowledged_past_the_ack_timeout_is_claimed_and_requeued(
        redis_server: RedisServer) -> None:  # fmt: skip
    broker = Broker.connect(redis_server.url, settings=DispatchSettings(ack_timeout=0.3))
    broker.register("hung", spec(priority=1))
    broker.register("fine", spec())
    rid = submit(broker)
    broker.place()
    (hung,) = take(broker, "hung")
    time.sleep(0.5)
    broker.heartbeat("hung")
    broker.heartbeat("fine")
    assert broker.reap().requeued == [rid]
    broker.register("hung", spec(ok=False))  # it is not taken again by the hung one
    assert broker.place() == 1
    (fine,) = take(broker, "fine")
    assert fine.attempt == 2
    assert not broker.ack("hung", hung, {"ok": True}, sandbox_id="x", address="x", pool="a")


def test_the_backlog_is_bounded_and_requests_expire_with_a_clear_outcome(
        redis_server: RedisServer) -> None:  # fmt: skip
    broker = Broker.connect(redis_server.url, settings=DispatchSettings(max_backlog=2))
    first = submit(broker, "nowhere", timeout=0.2)
    submit(broker, "nowhere")
    with pytest.raises(BacklogFull, match="backlog holds 2 requests"):
        submit(broker, "nowhere")
    time.sleep(0.3)
    assert broker.reap().expired == [first]
    assert broker.outcome(first, 0.1) == {"ok": False, "error": "expired"}
    submit(broker, "nowhere")  # room again


def test_gateways_placing_at_once_never_overbook_a_worker(redis_server: RedisServer) -> None:
    gateways = [Broker.connect(redis_server.url) for _ in range(4)]
    gateways[0].register("w", spec(sandboxes=3))
    rids = [submit(gateways[0]) for _ in range(40)]
    threads = [threading.Thread(target=g.place) for g in gateways for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = take(gateways[0], "w")
    assert len(delivered) == 3 and len({d.request_id for d in delivered}) == 3
    assert {d.request_id for d in delivered} <= set(rids)


def test_the_same_acknowledgement_twice_is_accepted_twice(broker: Broker) -> None:
    """A worker whose ack answer got lost acks again: that must not read as superseded
    (the worker would terminate the sandbox it made)."""
    broker.register("w", spec())
    submit(broker)
    broker.place()
    (got,) = take(broker, "w")
    for _ in range(2):
        assert broker.ack("w", got, {"ok": True}, sandbox_id="s1", address="x", pool="a")
    assert broker.sandbox("s1")["state"] == "running"


def test_heartbeat_ages_grow_and_are_none_once_the_lease_ran_out(broker: Broker) -> None:
    """What the dashboard's workers page shows: seconds since the last heartbeat, renewed by
    a heartbeat, None for a worker whose lease expired (and for an unknown id)."""
    broker.register("w1", spec())
    time.sleep(0.3)
    age = broker.heartbeat_ages(["w1"])["w1"]
    assert age is not None and 0.2 <= age < broker.settings.lease
    broker.heartbeat("w1")
    renewed = broker.heartbeat_ages(["w1"])["w1"]
    assert renewed is not None and renewed < age
    time.sleep(broker.settings.lease + 0.3)
    assert broker.heartbeat_ages(["w1", "nobody"]) == {"w1": None, "nobody": None}
