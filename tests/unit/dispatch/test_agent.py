"""The worker agent's bookkeeping, with a stand-in gateway link and sandbox manager: a
delivery seen twice runs once, a refused (stale) acknowledgement terminates what it made,
``lost`` drops everything and registers anew, ``unknown`` registers again with what it holds,
ended sandboxes are reported once; a run delivery goes to the runner and its result is the
acknowledgement; the warm pool's ready count travels with registrations and heartbeats."""

from __future__ import annotations

import builtins
import threading
import time
from typing import Any, cast

from sandpool.dispatch.agent import GatewayLink, WorkerAgent
from sandpool.dispatch.models import Delivery, Resources, WorkerSpec
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import EndReason, SandboxInfo, SandboxRequest, SandboxState
from sandpool.sandbox.warm import WarmStats


class FakeManager:
    def __init__(self, slow: float = 0.0) -> None:
        self.created: list[SandboxRequest] = []
        self.infos: dict[str, SandboxInfo] = {}
        self.terminated: list[str] = []
        self.slow = slow

    def create(self, request: SandboxRequest) -> SandboxInfo:
        time.sleep(self.slow)
        info = SandboxInfo(f"s{len(self.created)}", request.pool, "runc", None, "img",
                           state=SandboxState.RUNNING)  # fmt: skip
        self.created.append(request)
        self.infos[info.id] = info
        return info

    def terminate(self, sandbox_id: str, reason: EndReason = EndReason.KILLED) -> SandboxInfo:
        self.terminated.append(sandbox_id)
        info = self.infos[sandbox_id]
        info.state, info.reason = SandboxState.TERMINATED, reason
        return info

    def list(self, state: SandboxState | None = None) -> list[SandboxInfo]:
        return [i for i in self.infos.values() if state is None or i.state == state]

    warm_ready: int | None = None  # None: no warm pools started

    def warm_started(self) -> bool:
        return self.warm_ready is not None

    def warm_stats(self) -> builtins.list[WarmStats]:
        return [WarmStats("p", 2, ready=self.warm_ready or 0), WarmStats("other", 5, ready=5)]


class FakeLink:
    gateway = "http://gw"

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.acks: list[tuple[str, dict[str, Any]]] = []
        self.registrations: list[tuple[str, list[dict[str, Any]]]] = []
        self.heartbeat_status = "ok"
        self.reported: list[dict[str, Any]] = []
        self.register_status = "ok"
        self.warm: list[int | None] = []

    def register(self, worker_id: str, spec: WorkerSpec, held: list[dict[str, Any]],
                 warm: int | None = None) -> tuple[str, float]:  # fmt: skip
        self.registrations.append((worker_id, held))
        self.warm.append(warm)
        status, self.register_status = self.register_status, "ok"
        return status, 3.0

    def heartbeat(self, worker_id: str, ended: list[dict[str, Any]],
                  warm: int | None = None) -> str:  # fmt: skip
        self.reported += ended
        self.warm.append(warm)
        return self.heartbeat_status

    def ack(self, worker_id: str, delivery: Delivery, outcome: dict[str, Any],
            sandbox_id: str, address: str, pool: str) -> bool:  # fmt: skip
        self.acks.append((delivery.request_id, outcome))
        return self.accept


SPEC = WorkerSpec("p", "http://w", Resources(4000, 1 << 30, 0, 4))


def agent(link: FakeLink, manager: FakeManager) -> WorkerAgent:
    return WorkerAgent(cast(GatewayLink, link), cast(SandboxManager, manager), SPEC, "w1")


def delivery(rid: str = "r1", attempt: int = 1, pool: str = "p") -> Delivery:
    return Delivery(
        rid,
        attempt,
        "1-0",
        "create",
        {"sandbox": {"pool": pool}, "need": {"cpu": 1000, "sandboxes": 1}},
    )


def test_a_delivery_seen_again_while_running_runs_once() -> None:
    link, manager = FakeLink(), FakeManager(slow=0.3)
    a = agent(link, manager)
    threads = [threading.Thread(target=a._take, args=(delivery(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    assert len(manager.created) == 1
    assert [rid for rid, _ in link.acks] == ["r1"]
    assert link.acks[0][1]["ok"] is True and link.acks[0][1]["sandbox"]["id"] == "s0"


def test_a_refused_acknowledgement_terminates_the_sandbox_it_made() -> None:
    link, manager = FakeLink(accept=False), FakeManager()
    a = agent(link, manager)
    a._take(delivery())
    a.close()
    assert manager.terminated == ["s0"]


def test_a_request_for_another_pool_is_refused_not_run() -> None:
    link, manager = FakeLink(), FakeManager()
    a = agent(link, manager)
    a._take(delivery(pool="other"))
    a.close()
    assert manager.created == []
    assert link.acks[0][1]["ok"] is False and "pool other" in link.acks[0][1]["error"]["message"]


def test_ended_sandboxes_are_reported_once_and_lost_drops_everything() -> None:
    link, manager = FakeLink(), FakeManager()
    a = agent(link, manager)
    a.register()
    a._take(delivery("r1"))
    a._take(delivery("r2"))
    a.close()
    manager.terminate("s0", EndReason.TTL)
    a.heartbeat_once()
    a.heartbeat_once()
    assert link.reported == [{"id": "s0", "state": "terminated", "reason": "ttl"}]
    link.heartbeat_status = "unknown"  # Redis forgot us: register again with what runs
    a.heartbeat_once()
    assert link.registrations[-1] == ("w1", [{"id": "s1", "pool": "p",
                                              "need": {"cpu": 1000, "memory": 0, "gpus": 0,
                                                       "sandboxes": 1}}])  # fmt: skip
    link.heartbeat_status = "lost"
    a.heartbeat_once()
    assert "s1" in manager.terminated
    assert link.registrations[-1][0] != "w1" and link.registrations[-1][1] == []


def test_a_run_delivery_goes_to_the_runner_and_its_result_is_acknowledged() -> None:
    link, manager = FakeLink(), FakeManager()
    seen: list[dict[str, Any]] = []

    def runner(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return {"exit_code": 3}

    a = WorkerAgent(cast(GatewayLink, link), cast(SandboxManager, manager), SPEC, "w1",
                    runner=runner)  # fmt: skip
    a._take(Delivery("r9", 1, "1-0", "run", {"pool": "p", "run": {"command": ["x"]}}))
    a._take(Delivery("r8", 1, "2-0", "run", {"pool": "other", "run": {}}))
    a.close()
    assert manager.created == [] and [p["pool"] for p in seen] == ["p"]
    outcomes = dict(link.acks)
    assert outcomes["r9"] == {"ok": True, "result": {"exit_code": 3}, "worker": "w1"}
    refused = outcomes["r8"]
    assert refused["ok"] is False and "run for pool other" in refused["error"]["message"]


def test_the_ready_warm_count_of_its_own_pool_is_reported() -> None:
    link, manager = FakeLink(), FakeManager()
    a = agent(link, manager)
    a.register()
    a.heartbeat_once()
    manager.warm_ready = 2
    a.heartbeat_once()
    manager.warm_ready = 0
    a.heartbeat_once()
    assert link.warm == [None, None, 2, 0]
