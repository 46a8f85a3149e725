"""Faults with real processes: a worker SIGKILLed with a sandbox running and requests queued
on it (the sandbox is reported lost, the requests run on the other worker, each once), and
Redis restarted empty (the workers register again with what they hold; service resumes)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandpool.dispatch.broker import Broker
from sandpool.errors import DispatchError
from tests.integration.conftest import Sandbox, reachable_tmp_dir
from tests.integration.dispatch.processes import Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip

POOL = "performance"


@dataclass
class Setup:
    base: Path
    redis: RedisServer
    gateway: Gateway
    broker: Broker
    boxes: list[Sandbox]

    def worker(self, name: str, priority: int = 0) -> Worker:
        box = box_of(self.base, name)
        if priority:
            box.config_file.write_text(box.config_file.read_text().replace(
                "      containerRuntime: runc\n",
                f"      containerRuntime: runc\n      priority: {priority}\n"))  # fmt: skip
        self.boxes.append(box)
        worker = Worker(box, POOL, self.gateway.url, name=name)
        worker.registered()
        return worker


@pytest.fixture
def setup() -> Iterator[Setup]:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        gateway = Gateway(box_of(base, "gw"), redis.url)
        found = Setup(base, redis, gateway, Broker.connect(redis.url), [])
        try:
            yield found
        finally:
            gateway.stop()
            redis.stop()
            left = [x for box in found.boxes for x in box.leftovers()]
            for box in found.boxes:
                box.remove_parent_cgroups()
            assert not left, f"leaked: {left}"


def _until(check: object, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _free_sandboxes(broker: Broker, address: str) -> int:
    (found,) = [w for w in broker.workers() if w.spec.address == address]
    return found.free.sandboxes


def test_a_sigkilled_worker_s_sandboxes_are_lost_and_its_queue_runs_elsewhere_once(
        setup: Setup) -> None:  # fmt: skip
    hi, lo = setup.worker("hi", priority=10), setup.worker("lo")
    gw = setup.gateway
    first = gw.create(POOL)
    assert first.status_code == 201 and first.json()["address"] == hi.address  # priority
    lost_id = first.json()["sandbox"]["id"]
    hi.proc.send_signal(signal.SIGSTOP)  # it takes nothing more: its queue fills up
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(gw.create(POOL)))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    _until(lambda: _free_sandboxes(setup.broker, hi.address) == 8 - 4)  # placed on hi
    hi.proc.kill()
    hi.proc.wait()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    assert {a.json()["address"] for a in answers} == {lo.address}
    made = {a.json()["sandbox"]["id"] for a in answers}
    assert len(made) == 3
    record = setup.broker.sandbox(lost_id)
    assert (record["state"], record["reason"]) == ("terminated", "worker_lost")
    gone = gw.client.get(f"/sandboxes/{lost_id}")
    assert gone.status_code == 503 and "lost with its worker" in gone.json()["message"]
    # each ran once: hi started only the first, lo holds exactly the three
    hi_containers = list((hi.box.state_dir / "containers").iterdir())
    assert [d.name for d in hi_containers] == [lost_id]
    lo_held = setup.broker.client.smembers(setup.broker.keys.held(_id_of(setup.broker, lo)))
    assert lo_held == made
    for sandbox_id in made:
        assert gw.exec(sandbox_id, "echo", "ok") == (0, "ok\n")
    assert lo.stop() == 0
    hi.gc()


def _located(broker: Broker, sandbox_id: str) -> str | None:
    try:
        return broker.sandbox(sandbox_id).get("address")
    except DispatchError:  # the connection from before the restart
        return None


def _id_of(broker: Broker, worker: Worker) -> str:
    (found,) = [w for w in broker.workers() if w.spec.address == worker.address]
    return found.id


def test_redis_restarted_empty_the_workers_register_again_and_service_resumes(
        setup: Setup) -> None:  # fmt: skip
    worker = setup.worker("only")
    gw = setup.gateway
    made = gw.create(POOL)
    assert made.status_code == 201
    sandbox_id = made.json()["sandbox"]["id"]
    setup.redis.restart()  # no persistence: every key is gone
    _until(lambda: _located(setup.broker, sandbox_id) == worker.address)
    assert gw.exec(sandbox_id, "echo", "still here") == (0, "still here\n")
    again = gw.create(POOL)
    assert again.status_code == 201, again.text
    assert gw.client.delete(f"/sandboxes/{sandbox_id}").status_code == 200
    assert worker.stop() == 0
    assert os.path.exists(worker.box.state_dir)
