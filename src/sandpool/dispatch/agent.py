"""The worker's side of the dispatch: register with the gateway, renew the lease, pull
requests, run them with the ``SandboxManager`` and acknowledge them. The worker holds no
Redis or database credentials: it speaks only to the gateway's internal endpoints, with the
worker token (as Beta9's workers do).

- Heartbeats every third of the lease carry the sandboxes that ended since the last one.
  ``unknown`` (Redis forgot the worker: restarted without persistence) registers again with
  the sandboxes still running; ``lost`` (the gateway gave up on it: its sandboxes were
  reported lost and its requests run elsewhere) terminates everything it holds and
  registers under a new id.
- A delivery seen again (the answer of a pull got lost) is not run twice: the worker
  remembers what it started, by request and attempt, and acknowledges again.
- An acknowledgement the gateway refuses (``stale``: the request was given to another worker
  meanwhile) terminates the sandbox it made.
- A ``run`` delivery (a one-shot ``POST /v1/runs`` on a gateway) runs to its end with
  ``runner`` (``Sandpool.run_request``: a warm container when one matches) and its result
  is the acknowledgement's outcome.
- Registration and heartbeats carry the pool's ready warm sandboxes (``warm``), which the
  gateway's placement prefers.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from sandpool.dispatch.models import Delivery, Resources, WorkerSpec, request_from_json
from sandpool.errors import DispatchError, SandpoolError
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import SandboxState

__all__ = ["GatewayLink", "WorkerAgent"]

log = logging.getLogger("sandpool.worker")
PULL_WAIT = 10.0  # seconds a pull waits at the gateway for work


Runner = Callable[[dict[str, Any]], dict[str, Any]]  # a run delivery's payload -> its result


class GatewayLink:
    """The gateway's internal endpoints, as this worker calls them."""

    def __init__(self, gateway: str, token: str) -> None:
        self.gateway = gateway.rstrip("/")
        self.client = httpx.Client(base_url=f"{self.gateway}/internal/v1",
                                   headers={"authorization": f"Bearer {token}"},
                                   timeout=httpx.Timeout(PULL_WAIT + 20, connect=5))  # fmt: skip

    def _post(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        try:
            answer = self.client.post(path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise DispatchError(f"the gateway {self.gateway} does not answer: {exc}") from exc
        if answer.status_code != 200:
            raise DispatchError(f"the gateway {self.gateway} answered {answer.status_code} to "
                                f"{path}: {answer.text[:300]}")  # fmt: skip
        data: dict[str, Any] = answer.json()
        return data

    def register(self, worker_id: str, spec: WorkerSpec, held: list[dict[str, Any]],
                 warm: int | None = None) -> tuple[str, float]:  # fmt: skip
        """Register: the status (``ok``/``lost``) and the lease in seconds."""
        body = {"workerId": worker_id, "spec": spec.to_json(), "sandboxes": held, "warm": warm}
        answer = self._post("/workers", body)
        return str(answer["status"]), float(answer["lease"])

    def heartbeat(self, worker_id: str, ended: list[dict[str, Any]],
                  warm: int | None = None) -> str:  # fmt: skip
        body = {"ended": ended, "warm": warm}
        return str(self._post(f"/workers/{worker_id}/heartbeat", body)["status"])

    def pull(self, worker_id: str, count: int, wait: float, recover: bool) -> list[Delivery]:
        data = self._post(f"/workers/{worker_id}/pull", {}, count=count, wait=wait,
                          recover=recover)  # fmt: skip
        return [Delivery.from_json(d) for d in data["deliveries"]]

    def ack(self, worker_id: str, delivery: Delivery, outcome: dict[str, Any],
            sandbox_id: str, address: str, pool: str) -> bool:  # fmt: skip
        body = {"delivery": delivery.to_json(), "outcome": outcome, "sandboxId": sandbox_id,
                "address": address, "pool": pool}  # fmt: skip
        return bool(self._post(f"/workers/{worker_id}/ack", body)["accepted"])

    def close(self) -> None:
        self.client.close()


@dataclass
class _Started:
    """What this worker did with one delivery (kept until acknowledged)."""

    outcome: dict[str, Any]
    sandbox_id: str = ""
    acked: bool = False


@dataclass
class _Held:
    """The sandboxes this worker made for the gateway, and which ended were reported."""

    need: dict[str, Resources] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


def new_worker_id() -> str:
    return f"w-{uuid.uuid4().hex[:12]}"


class WorkerAgent:
    """Pulls the gateway's requests for one pool and runs them (see the module docstring)."""

    def __init__(self, link: GatewayLink, manager: SandboxManager, spec: WorkerSpec,
                 worker_id: str | None = None, runner: Runner | None = None) -> None:  # fmt: skip
        self.link, self.manager, self.spec = link, manager, spec
        self.runner = runner  # a run delivery's payload -> its result (JSON)
        self.worker_id = worker_id or new_worker_id()
        self.stop = threading.Event()
        self.registered = threading.Event()
        self.lease = 10.0  # the gateway's, once registered
        self._lock = threading.Lock()
        self._started: dict[tuple[str, int], _Started] = {}
        self._held = _Held()
        self._pool = ThreadPoolExecutor(max(1, min(spec.capacity.sandboxes, 32)),
                                        thread_name_prefix="create")  # fmt: skip

    # ---- registration and lease ------------------------------------------------------------

    def register(self) -> None:
        """Register (with the sandboxes still held); under a new id if the old one is lost."""
        with self._lock:
            held = [{"id": i.id, "pool": i.pool, "need": self._held.need[i.id].to_json()}
                    for i in self.manager.list(state=SandboxState.RUNNING)
                    if i.id in self._held.need]  # fmt: skip
        status, self.lease = self.link.register(self.worker_id, self.spec, held, self._warm())
        if status == "lost":
            self._drop_everything()
            self.worker_id = new_worker_id()
            self.link.register(self.worker_id, self.spec, [], self._warm())
        log.info("registered with %s as %s (pool %s, runtime ok: %s)", self.link.gateway,
                 self.worker_id, self.spec.pool, self.spec.runtime_ok)  # fmt: skip
        self.registered.set()

    def _drop_everything(self) -> None:
        log.warning("the gateway declared worker %s lost: terminating its sandboxes",
                    self.worker_id)  # fmt: skip
        with self._lock:
            ids = list(self._held.need)
            self._held = _Held()
            self._started.clear()
        for sandbox_id in ids:
            self._terminate(sandbox_id)

    def _terminate(self, sandbox_id: str) -> None:
        try:
            self.manager.terminate(sandbox_id)
        except SandpoolError as exc:
            log.info("sandbox %s: %s", sandbox_id, exc)

    def heartbeat_once(self) -> None:
        """Renew the lease with the sandboxes that ended since the last time."""
        ended = self._ended()
        status = self.link.heartbeat(self.worker_id, ended, self._warm())
        if status == "ok":
            with self._lock:
                self._held.reported.update(e["id"] for e in ended)
                for e in ended:
                    self._held.need.pop(e["id"], None)
        elif status == "lost":
            self._drop_everything()
            self.worker_id = new_worker_id()
            self.register()
        else:  # unknown: Redis lost its state; the sandboxes still run here
            self.register()

    def _warm(self) -> int | None:
        """Ready warm sandboxes of this worker's pool (None: it keeps none)."""
        if not self.manager.warm_started():
            return None
        return sum(s.ready for s in self.manager.warm_stats() if s.pool == self.spec.pool)

    def _ended(self) -> list[dict[str, Any]]:
        with self._lock:
            mine = set(self._held.need) - self._held.reported
        ended = self.manager.list(state=SandboxState.TERMINATED)
        return [{"id": i.id, "state": i.state.value, "reason": i.reason.value if i.reason else ""}
                for i in ended if i.id in mine]  # fmt: skip

    def heartbeats(self) -> None:
        """Heartbeat three times a lease until ``stop`` (a failed one: at the next beat)."""
        while not self.registered.wait(0.1):
            if self.stop.is_set():
                return
        while not self.stop.wait(self.lease / 3):
            try:
                self.heartbeat_once()
            except DispatchError as exc:
                log.warning("heartbeat failed: %s", exc)

    # ---- work ---------------------------------------------------------------------------

    def pull_loop(self) -> None:
        """Pull and run requests until ``stop``."""
        recover = True  # ask for what this worker took but never acknowledged
        while not self.stop.is_set():
            try:
                if not self.registered.is_set():
                    self.register()
                found = self.link.pull(self.worker_id, 16, PULL_WAIT, recover)
                recover = False
                for delivery in found:
                    self._take(delivery)
            except DispatchError as exc:  # the answer may be lost: recover at the next pull
                log.warning("pull failed: %s", exc)
                recover = True
                self.stop.wait(1.0)

    def _take(self, delivery: Delivery) -> None:
        key = (delivery.request_id, delivery.attempt)
        with self._lock:
            started = self._started.get(key)
            if started is None:
                self._started[key] = _Started({})  # running: a re-delivery waits for the ack
        if started is None:
            self._pool.submit(self._run, delivery)
        elif started.outcome:  # done, its acknowledgement failed: again (the script dedups)
            self._ack(delivery, started)

    def _run(self, delivery: Delivery) -> None:
        try:
            started = self._one_shot(delivery) if delivery.kind == "run" else self._create(delivery)
        except SandpoolError as exc:
            started = _Started(
                {
                    "ok": False,
                    "error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint},
                }
            )
        except Exception as exc:  # a thread of its own: report it, never die silently
            log.exception("request %s failed", delivery.request_id)
            started = _Started(
                {"ok": False, "error": {"type": "DispatchError", "message": f"worker error: {exc}"}}
            )
        with self._lock:
            self._started[(delivery.request_id, delivery.attempt)] = started
        self._ack(delivery, started)

    def _create(self, delivery: Delivery) -> _Started:
        """Start the sandbox of a create delivery (its errors are raised as they are)."""
        request = request_from_json(dict(delivery.payload["sandbox"]))
        if request.pool != self.spec.pool:
            raise DispatchError(f"worker of pool {self.spec.pool} got a request for pool "
                                f"{request.pool}")  # fmt: skip
        info = self.manager.create(request)
        with self._lock:
            self._held.need[info.id] = _need_of(delivery)
        return _Started({"ok": True, "sandbox": info.to_json(), "worker": self.worker_id,
                         "address": self.spec.address, "record": info.to_record()},
                        info.id)  # fmt: skip

    def _one_shot(self, delivery: Delivery) -> _Started:
        """Run a one-shot delivery to its end (its errors are raised as they are)."""
        if self.runner is None:
            raise DispatchError("this worker runs no one-shot runs")
        pool = str(delivery.payload.get("pool"))
        if pool != self.spec.pool:
            raise DispatchError(f"worker of pool {self.spec.pool} got a run for pool {pool}")
        return _Started({"ok": True, "result": self.runner(delivery.payload),
                         "worker": self.worker_id})  # fmt: skip

    def _ack(self, delivery: Delivery, started: _Started) -> None:
        try:
            spec = self.spec
            accepted = self.link.ack(self.worker_id, delivery, started.outcome,
                                     started.sandbox_id, spec.address, spec.pool)  # fmt: skip
        except DispatchError as exc:  # delivered again at the next pull, acked then
            log.warning("ack of %s failed: %s", delivery.request_id, exc)
            return
        with self._lock:
            self._started.pop((delivery.request_id, delivery.attempt), None)
        if not accepted and started.sandbox_id:
            log.warning("request %s was given to another worker: terminating sandbox %s",
                        delivery.request_id, started.sandbox_id)  # fmt: skip
            with self._lock:
                self._held.need.pop(started.sandbox_id, None)
            self._terminate(started.sandbox_id)

    def close(self) -> None:
        """Stop pulling; wait for the creates in flight."""
        self.stop.set()
        self._pool.shutdown(wait=True)


def _need_of(delivery: Delivery) -> Resources:
    need = delivery.payload.get("need")
    return Resources.from_json(need) if isinstance(need, dict) else Resources(sandboxes=1)


def with_address(spec: WorkerSpec, address: str) -> WorkerSpec:
    """The spec with the address the worker actually listens on."""
    return replace(spec, address=address)
