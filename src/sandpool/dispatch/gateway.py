"""The gateway's dispatch: create a sandbox on a worker of its pool and wait for it; find the
worker holding a sandbox; keep placing the backlog and reaping lost workers in the
background (every gateway does; the scripts make that safe).

The public sandbox routes call ``create`` and ``locate`` (then ``proxy`` to the worker).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from sandpool import errors
from sandpool.config.resolved import ResolvedConfig
from sandpool.dispatch.broker import EXPIRED, Broker, ReapReport
from sandpool.dispatch.models import Demand, Resources, request_to_json
from sandpool.dispatch.placement_warm import warm_could_serve
from sandpool.errors import DispatchError, NotFound, PlacementTimeout, SandpoolError, WorkerLost
from sandpool.sandbox.models import SandboxRequest
from sandpool.sizes import parse_size

__all__ = ["Dispatcher", "demand_for", "error_of"]

log = logging.getLogger("sandpool.dispatch")
PLACE_EVERY = 0.1  # seconds between placement passes over the backlog
STARTUP_GRACE = 2  # leases a starting gateway waits before its first reaping pass
DEFAULT_CPU = 1.0  # cores a request that names none reserves on its worker, if its pool has none
DEFAULT_MEMORY = "512Mi"


def demand_for(request: SandboxRequest, config: ResolvedConfig | None = None) -> Demand:
    """What ``request`` needs of a worker: its own limits, else its pool's defaults as this
    gateway's configuration states them, else 1 CPU and 512Mi; ``warm`` if a warm sandbox of
    its pool would match it (``dispatch.placement_warm``)."""
    pool = config.pools.get(request.pool) if config else None
    cpu = request.cpu or (pool.cpu if pool else None) or DEFAULT_CPU
    memory = request.memory or (pool.memory if pool else None) or DEFAULT_MEMORY
    warm = config is not None and warm_could_serve(request, config)
    return Demand(request.pool, Resources(int(cpu * 1000), parse_size(memory), 0, 1), warm=warm)


def error_of(outcome: dict[str, Any]) -> SandpoolError:
    """The error a worker reported (its class when sandpool has it), for the caller."""
    error = outcome.get("error")
    if not isinstance(error, dict):
        return DispatchError(f"the worker failed the request: {error}")
    kind = getattr(errors, str(error.get("type")), None)
    message, hint = str(error.get("message")), error.get("hint")
    if isinstance(kind, type) and issubclass(kind, SandpoolError):
        try:
            return kind(message, hint=hint)
        except TypeError:  # a class with a constructor of its own
            pass
    return DispatchError(message, hint=hint)


class Dispatcher:
    """Sandboxes on remote workers, through the broker."""

    def __init__(self, broker: Broker, config: ResolvedConfig | None = None) -> None:
        self.broker, self.config = broker, config
        self._stop = threading.Event()
        self._stop_reaping = threading.Event()
        self._thread: threading.Thread | None = None

    def create(self, request: SandboxRequest, timeout: float | None = None) -> dict[str, Any]:
        """Queue the create, wait for a worker to run it: ``{"sandbox": info JSON, "worker":
        id, "address": URL}``. PlacementTimeout if no worker of the pool took it in time,
        BacklogFull, the worker's own error if the start failed."""
        demand = demand_for(request, self.config)
        payload = {"sandbox": request_to_json(request), "need": demand.resources.to_json()}
        return self.dispatch("create", demand, payload, "the sandbox", timeout)

    def dispatch(self, kind: str, demand: Demand, payload: dict[str, Any],
                 what: str, timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Queue a request of ``kind`` (``create``, ``run``), wait for the worker's outcome
        (``ok``); PlacementTimeout naming ``what``, BacklogFull, or the worker's error."""
        request_id = uuid.uuid4().hex
        settings = self.broker.settings
        wait = settings.backlog_timeout if timeout is None else timeout
        self.broker.submit(request_id, demand, payload, kind, timeout=wait)
        self.broker.place()
        outcome = self._wait(request_id, wait + settings.ack_timeout)
        if outcome.get("ok"):
            return outcome
        if outcome.get("error") == EXPIRED:
            raise PlacementTimeout(
                f"no worker of pool '{demand.pool}' took {what} within {wait:g} s",
                hint=f"start one (`sandpool worker --pool {demand.pool} --gateway URL`) or "
                     "check that the pool's workers pass their runtime check",
            )  # fmt: skip
        raise error_of(outcome)

    def _wait(self, request_id: str, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            outcome = self.broker.outcome(request_id, min(1.0, deadline - time.monotonic()))
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                raise DispatchError(f"no answer for request {request_id} in {limit:g} s")

    def locate(self, sandbox_id: str) -> str:
        """The internal address of the worker holding the sandbox (NotFound, WorkerLost)."""
        record = self.broker.sandbox(sandbox_id)
        if not record:
            raise NotFound(f"no sandbox with id '{sandbox_id}'")
        if record.get("reason") == "worker_lost":
            raise WorkerLost(f"sandbox {sandbox_id} was lost with its worker",
                             hint="create a new sandbox")  # fmt: skip
        return record["address"]

    # ---- the background passes -------------------------------------------------------------

    def start(self) -> None:
        """Place and reap in a thread of this gateway until ``close``."""
        self._thread = threading.Thread(target=self._loop, name="dispatch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        reap_every = max(0.1, self.broker.settings.lease / 4)
        # a starting gateway may follow a time when no gateway answered (a restart of the only
        # one): the workers' leases ran out because their heartbeats had nowhere to go, not
        # because they died. Give them STARTUP_GRACE leases to heartbeat before reaping.
        next_reap = time.monotonic() + STARTUP_GRACE * self.broker.settings.lease
        while not self._stop.wait(PLACE_EVERY):
            try:
                if time.monotonic() >= next_reap and not self._stop_reaping.is_set():
                    next_reap = time.monotonic() + reap_every
                    report = self.broker.reap()
                    self._log(report)
                self.broker.place()
            except DispatchError as exc:  # Redis away: try again on the next pass
                log.warning("dispatch pass failed: %s", exc)
                self._stop.wait(1.0)

    @staticmethod
    def _log(report: ReapReport) -> None:
        for worker in report.lost_workers:
            log.warning("worker %s lost: %d requests requeued, sandboxes lost: %s", worker,
                        len(report.requeued), report.lost_sandboxes)  # fmt: skip
        if report.expired:
            log.warning("%d requests expired in the backlog", len(report.expired))

    def stop_reaping(self) -> None:
        """No more reaping (placement goes on): this gateway is stopping and refuses new
        connections, so the workers' heartbeats to it fail; that says nothing of them."""
        self._stop_reaping.set()

    def close(self) -> None:
        """Stop the background passes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
