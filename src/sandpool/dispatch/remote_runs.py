"""One-shot runs on a gateway (``POST /v1/runs`` with ``--redis``): a ``RunExecutor`` that
places the run on a worker of its pool through the same dispatch as a sandbox create (same
placement, backlog, reliable delivery), and answers with the worker's ``RunResult`` (exit
code, captured output, OOM, timeout) or its error, as the embedded server would.

A delivery unacknowledged for the dispatch's ``ackTimeout`` goes back to the backlog, so a
run must end before that: a run that asks for a longer timeout is refused (400), and one
with no timeout (neither its own nor its pool's) gets ``RUN_SHARE`` of it. A run in flight
is not stopped when its gateway stops: it ends on its worker by itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sandpool.config.resolved import ResolvedConfig
from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.models import Demand, Resources
from sandpool.dispatch.placement_warm import warm_could_serve_run
from sandpool.dispatch.run_wire import request_to_wire, result_from_wire
from sandpool.errors import InvalidRequest
from sandpool.service.runs import Stoppable, run_cost
from sandpool.worker.request import RunRequest, RunResult

__all__ = ["RUN_SHARE", "RemoteRunExecutor"]

RUN_SHARE = 0.9  # of ackTimeout: the longest a run through a gateway may take


class RemoteRunExecutor:
    """Runs on the workers of the pool, through ``dispatcher``; thread safe."""

    def __init__(self, dispatcher: Dispatcher, config: ResolvedConfig) -> None:
        self.dispatcher, self.config = dispatcher, config

    def run(self, pool: str, request: RunRequest, stdin: bytes | None,
            on_container: Callable[[Stoppable], None]) -> RunResult:  # fmt: skip
        """Place the run, wait for its end on the worker (PlacementTimeout, BacklogFull,
        InvalidRequest, or the worker's own error)."""
        resolved = self.config.pool(pool)
        request = self._bounded(request, resolved.timeout)
        cpu, memory = run_cost(resolved, request)
        need = Resources(round(cpu * 1000), memory, request.gpus, 1)
        warm = warm_could_serve_run(request, resolved, self.config.default_image)
        demand = Demand(pool, need, warm=warm)
        payload = {**request_to_wire(pool, request, stdin), "need": need.to_json()}
        outcome = self.dispatcher.dispatch("run", demand, payload, "the run")
        return result_from_wire(dict(outcome["result"]))

    def _bounded(self, request: RunRequest, pool_timeout: float | None) -> RunRequest:
        limit = round(self.dispatcher.broker.settings.ack_timeout * RUN_SHARE, 3)
        asked = request.timeout if request.timeout is not None else pool_timeout
        if asked is None:
            return dataclasses.replace(request, timeout=limit)
        if asked > limit:
            raise InvalidRequest(
                f"timeout: {asked:g} s is longer than a run through a gateway may take "
                f"({limit:g} s, {RUN_SHARE:g} of the dispatch's ackTimeout)",
                field="timeout",
                hint="ask for less, or raise SANDPOOL_DISPATCH_ACK_TIMEOUT on the gateways",
            )
        return request

    def close(self) -> None:
        """Nothing to close: the workers own the containers."""
