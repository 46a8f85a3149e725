"""The gateway's side of the dispatch, over Redis: the worker registry (leases renewed by
heartbeats), the backlog, placement onto per-worker request streams, delivery to workers,
acknowledgements, and the reaper (lost workers, stale deliveries, backlog deadlines).

Reliable delivery: a request placed on a worker is an entry of the worker's stream
(consumer group ``worker``). ``pull`` hands the worker first its own entries taken but not
acknowledged (a long-poll answer lost on the way is delivered again), then new ones. An
entry is deleted only by its acknowledgement, so a worker that dies leaves its unfinished
requests in its stream, and ``reap`` puts them back in the backlog. Each placement bumps the
request's ``attempt``; an acknowledgement of an older attempt is refused (``stale``) and the
worker undoes what it did: a request is never run twice to completion.

Thread safe (redis-py's client is); any number of gateways may share one Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis

from sandpool.dispatch import scripts
from sandpool.dispatch.keys import GROUP, Keys
from sandpool.dispatch.models import Delivery, Demand, Resources, WorkerSpec, WorkerState
from sandpool.dispatch.placement import choose
from sandpool.errors import BacklogFull, DispatchError

__all__ = ["Broker", "DispatchSettings", "ReapReport", "need_text"]

T = TypeVar("T")
EXPIRED = "expired"  # the outcome of a request whose backlog deadline passed
# the outcome of a one-shot run its worker had taken when it was lost (it may have run in
# part, so it is not run again: at most once)
LOST_RUN = json.dumps({"ok": False, "error": {
    "type": "WorkerLost",
    "message": "the worker running it was lost before it reported the end; the run may have "
               "run in part and was not started again",
    "hint": "run it again if it is safe to repeat",
}})  # fmt: skip


@dataclass(frozen=True)
class DispatchSettings:
    """The dispatch's bounds, in seconds unless said otherwise."""

    lease: float = 10.0  # a worker not heard of for this long is lost
    max_backlog: int = 1000  # requests waiting for a worker, at most
    backlog_timeout: float = 60.0  # how long a request may wait for a worker
    ack_timeout: float = 300.0  # a delivery unacknowledged this long goes back to the backlog
    keep: float = 3600.0  # outcomes and ended sandboxes' records stay this long
    tombstone: float = 86400.0  # a lost worker's id is refused this long


@dataclass
class ReapReport:
    """What one ``reap`` did."""

    lost_workers: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    lost_sandboxes: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    lost_runs: list[str] = field(default_factory=list)  # taken by a lost worker: failed


def need_text(need: Resources) -> str:
    """A need as the scripts store it: ``cpu,memory,gpus,sandboxes``."""
    return f"{need.cpu},{need.memory},{need.gpus},{need.sandboxes}"


class Broker:
    """Dispatch state in one Redis (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None,
                 settings: DispatchSettings | None = None, url: str = "redis") -> None:  # fmt: skip
        self.client, self.keys = client, keys or Keys()
        self.settings, self.url = settings or DispatchSettings(), url
        self._scripts = {name: client.register_script(getattr(scripts, name))
                         for name in scripts.__all__}  # fmt: skip

    @classmethod
    def connect(cls, url: str, *, prefix: str = "sp:",
                settings: DispatchSettings | None = None) -> Broker:  # fmt: skip
        """A broker on the Redis at ``url`` (``redis://host:port/db``, ``unix:///path``)."""
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=30, socket_connect_timeout=5,
            health_check_interval=10,
        )  # fmt: skip
        return cls(client, Keys(prefix), settings, url)

    def _call(self, what: Callable[[], T]) -> T:
        try:
            return what()
        except redis.RedisError as exc:
            raise DispatchError(
                f"the dispatch store (Redis at {self.url}) failed: {exc}",
                hint="check that redis-server runs and is reachable; retry when it is back",
            ) from exc

    def _run(self, name: str, *args: str | int) -> Any:
        script = self._scripts[name]
        return self._call(lambda: script(keys=[], args=[self.keys.prefix, *args]))

    # ---- workers ---------------------------------------------------------------------------

    def register(self, worker_id: str, spec: WorkerSpec,
                 held: Sequence[tuple[str, str, Resources]] = ()) -> str:  # fmt: skip
        """Add (or re-add) a worker with the sandboxes it already holds (id, pool, need):
        ``ok``, or ``lost`` if this id was declared lost (register under a new one)."""
        cap = spec.capacity
        extra = [x for sid, pool, need in held for x in (sid, pool, need_text(need))]
        return str(self._run("REGISTER", worker_id, json.dumps(spec.to_json()), cap.cpu,
                             cap.memory, cap.gpus, cap.sandboxes, self._lease_ms(),
                             spec.address, *extra))  # fmt: skip

    def heartbeat(self, worker_id: str, warm: int | None = None) -> str:
        """Renew the worker's lease (and record its ready warm sandboxes): ``ok``, ``lost``
        or ``unknown`` (register again)."""
        ready = "" if warm is None else max(0, int(warm))
        return str(self._run("HEARTBEAT", worker_id, self._lease_ms(), ready))

    def _lease_ms(self) -> int:
        return max(1, int(self.settings.lease * 1000))

    def heartbeat_ages(self, worker_ids: list[str]) -> dict[str, float | None]:
        """Seconds since each worker's last heartbeat (from its lease's time left); None
        where the lease has run out."""
        pipe = self.client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.pttl(self.keys.heartbeat(worker_id))
        left: list[int] = self._call(pipe.execute)
        lease = self._lease_ms()
        return {w: (max(0, lease - ms) / 1000 if ms >= 0 else None)
                for w, ms in zip(worker_ids, left, strict=True)}  # fmt: skip

    def workers(self) -> list[WorkerState]:
        """Every registered worker with its free share and whether its lease holds."""
        ids = sorted(cast(set[str], self._call(lambda: self.client.smembers(self.keys.workers))))
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self.keys.worker(worker_id))
            pipe.exists(self.keys.heartbeat(worker_id))
        rows: list[Any] = self._call(pipe.execute)
        found = []
        for worker_id, row, alive in zip(ids, rows[::2], rows[1::2], strict=True):
            if row.get("spec"):
                free = Resources(*(int(row.get(f"free_{k}", 0))
                                   for k in ("cpu", "memory", "gpus", "sandboxes")))  # fmt: skip
                spec = WorkerSpec.from_json(json.loads(row["spec"]))
                warm = int(row.get("warm") or 0)
                found.append(WorkerState(worker_id, spec, free, bool(alive), warm))
        return found

    # ---- requests --------------------------------------------------------------------------

    def submit(self, request_id: str, demand: Demand, payload: dict[str, Any],
               kind: str = "create", timeout: float | None = None) -> None:  # fmt: skip
        """Queue a request in the backlog (BacklogFull if it holds ``max_backlog``)."""
        now = time.time()
        wait = self.settings.backlog_timeout if timeout is None else timeout
        done = self._run("SUBMIT", request_id, self.settings.max_backlog, int(now * 1000),
                         int((now + wait) * 1000), json.dumps(demand.to_json()),
                         json.dumps(payload), kind, int(self.settings.keep),
                         need_text(demand.resources))  # fmt: skip
        if done == 0:
            raise BacklogFull(f"the dispatch backlog holds {self.settings.max_backlog} requests "
                              "already", hint="retry later, or add workers")  # fmt: skip
        if done == -1:
            raise DispatchError(f"request id {request_id} is taken")

    def place(self, limit: int = 256) -> int:
        """Place what the backlog holds (oldest first) on workers that fit: how many."""
        ids = cast(list[str], self._call(
            lambda: self.client.zrange(self.keys.backlog, 0, limit - 1)))  # fmt: skip
        if not ids:
            return 0
        workers = {w.id: w for w in self.workers()}
        pipe = self.client.pipeline(transaction=False)
        for request_id in ids:
            pipe.hget(self.keys.request(request_id), "demand")
        demands = cast(list[str | None], self._call(pipe.execute))
        placed = 0
        for request_id, text in zip(ids, demands, strict=True):
            if text is not None and self._place_one(request_id, Demand.from_json(json.loads(text)),
                                                    workers):  # fmt: skip
                placed += 1
        return placed

    def _place_one(self, request_id: str, demand: Demand, workers: dict[str, WorkerState]) -> bool:
        chosen = choose(workers.values(), demand)
        if chosen is None:
            return False
        need = demand.resources
        claims = demand.warm and chosen.warm > 0
        answer = self._run("RESERVE", chosen.id, request_id, need.cpu, need.memory, need.gpus,
                           need.sandboxes, "1" if claims else "0")  # fmt: skip
        if answer[0] == "ok":
            warm = chosen.warm - 1 if claims else chosen.warm
            workers[chosen.id] = WorkerState(chosen.id, chosen.spec, chosen.free.minus(need),
                                              True, warm)  # fmt: skip
            return True
        if answer[0] in ("dead", "full"):  # another gateway got there first: look again later
            workers.pop(chosen.id, None)
        return False

    def pull(self, worker_id: str, count: int = 16, block: float = 0.0,
             recover: bool = True) -> list[Delivery]:  # fmt: skip
        """Up to ``count`` requests for the worker, waiting up to ``block`` seconds for one:
        with ``recover`` (after a reconnect, a lost answer) its unacknowledged ones first."""
        queue = self.keys.queue(worker_id)
        entries = self._read(worker_id, queue, "0", count, None) if recover else []
        if not entries and block > 0:
            entries = self._read(worker_id, queue, ">", count, max(1, int(block * 1000)))
        elif not entries:
            entries = self._read(worker_id, queue, ">", count, None)
        return self._deliveries(worker_id, entries)

    def _read(self, worker_id: str, queue: str, start: str, count: int,
              block_ms: int | None) -> list[tuple[str, dict[str, str]]]:  # fmt: skip
        answer = self._call(lambda: self.client.xreadgroup(
            GROUP, worker_id, {queue: start}, count=count, block=block_ms))  # fmt: skip
        if not answer:
            return []
        entries = cast(list[Any], answer)[0][1]
        return [(eid, fields) for eid, fields in entries if fields]

    def _deliveries(self, worker_id: str,
                    entries: Iterable[tuple[str, dict[str, str]]]) -> list[Delivery]:  # fmt: skip
        found = []
        for entry_id, fields in entries:
            row = self.request_state(fields["req"])
            current = (row.get("state") == "placed" and row.get("worker") == worker_id
                       and row.get("attempt") == fields["attempt"])  # fmt: skip
            if not current:  # superseded: a re-delivery elsewhere owns it now
                self._drop(worker_id, entry_id)
                continue
            payload = json.loads(row["payload"])
            kind = row.get("kind", "create")
            found.append(Delivery(fields["req"], int(fields["attempt"]), entry_id, kind, payload))
        return found

    def _drop(self, worker_id: str, entry_id: str) -> None:
        queue = self.keys.queue(worker_id)

        def drop() -> None:
            self.client.xack(queue, GROUP, entry_id)
            self.client.xdel(queue, entry_id)

        self._call(drop)

    def ack(self, worker_id: str, delivery: Delivery, outcome: dict[str, Any], *,
            sandbox_id: str = "", address: str = "", pool: str = "") -> bool:  # fmt: skip
        """Record a delivery's outcome (``sandbox_id`` set: it made that sandbox); False if
        the delivery is stale and the worker must undo it."""
        answer = self._run("ACK", worker_id, delivery.request_id, delivery.attempt,
                           delivery.entry_id, "1" if sandbox_id else "0", json.dumps(outcome),
                           int(self.settings.keep), sandbox_id, address, pool)  # fmt: skip
        return bool(answer == "ok")

    def release(self, worker_id: str, sandbox_id: str, state: str, reason: str) -> bool:
        """A sandbox of the worker ended: record its state and give its share back."""
        return bool(self._run("RELEASE", worker_id, sandbox_id, state, reason,
                              int(self.settings.keep)))  # fmt: skip

    def outcome(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """Wait up to ``timeout`` s for the request's outcome (None: not yet). The outcome
        stays for the next caller (any gateway may ask)."""
        key = self.keys.result(request_id)
        wait = cast(int, max(0.01, timeout))  # redis-py says int; Redis takes fractions
        answer = self._call(lambda: self.client.blmove(key, key, wait, "LEFT", "RIGHT"))
        return None if answer is None else cast(dict[str, Any], json.loads(cast(str, answer)))

    def request_state(self, request_id: str) -> dict[str, str]:
        """The request's record (empty once forgotten)."""
        key = self.keys.request(request_id)
        return cast(dict[str, str], self._call(lambda: self.client.hgetall(key)))

    def sandbox(self, sandbox_id: str) -> dict[str, str]:
        """Where a sandbox runs and its state as the dispatch knows it (empty: unknown)."""
        key = self.keys.sandbox(sandbox_id)
        return cast(dict[str, str], self._call(lambda: self.client.hgetall(key)))

    # ---- the reaper ------------------------------------------------------------------------

    def reap(self) -> ReapReport:
        """Lost workers (lease ran out: their unfinished requests back to the backlog, the
        one-shot runs they had taken failed with ``LOST_RUN``, their sandboxes
        ``terminated``/``worker_lost``), deliveries unacknowledged past
        ``ack_timeout``, and backlog deadlines."""
        report = ReapReport()
        for worker in self.workers():
            if not worker.alive:
                answer = self._run("LOST", worker.id, int(self.settings.tombstone),
                                   int(self.settings.keep), LOST_RUN)  # fmt: skip
                if answer:
                    report.lost_workers.append(worker.id)
                    report.requeued += answer[0]
                    report.lost_sandboxes += answer[1]
                    report.lost_runs += answer[2]
                continue
            report.requeued += self._run("STALE", worker.id, int(self.settings.ack_timeout * 1000))
        outcome = json.dumps({"ok": False, "error": EXPIRED})
        report.expired = list(self._run("EXPIRE", int(time.time() * 1000),
                                        int(self.settings.keep), outcome))  # fmt: skip
        return report
