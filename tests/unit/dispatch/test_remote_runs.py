"""A one-shot run on a gateway: placed as a ``run`` delivery with its need and warm flag,
bounded by the dispatch's ackTimeout (a longer timeout is refused, none gets the bound), and
answered with the worker's result."""

from __future__ import annotations

from typing import Any, cast

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import resolve
from sandpool.dispatch.broker import DispatchSettings
from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.models import Demand
from sandpool.dispatch.remote_runs import RemoteRunExecutor
from sandpool.dispatch.run_wire import request_from_wire, result_to_wire
from sandpool.errors import InvalidRequest
from sandpool.worker.request import RunRequest, RunResult


class FakeDispatcher:
    def __init__(self) -> None:
        self.broker = type("B", (), {"settings": DispatchSettings(ack_timeout=100.0)})()
        self.sent: list[tuple[str, Demand, dict[str, Any]]] = []

    def dispatch(self, kind: str, demand: Demand, payload: dict[str, Any], what: str,
                 timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        self.sent.append((kind, demand, payload))
        result = RunResult("r1", "p", "runc", None, "img", exit_code=3, stdout=b"out")
        return {"ok": True, "result": result_to_wire(result)}


def _executor(pool: dict[str, Any]) -> tuple[RemoteRunExecutor, FakeDispatcher]:
    config = resolve(SandpoolConfig.model_validate({"worker": {"pools": {"p": pool}}}))
    fake = FakeDispatcher()
    return RemoteRunExecutor(cast(Dispatcher, fake), config), fake


def test_a_run_is_placed_as_a_run_delivery_and_answered_with_the_result() -> None:
    executor, fake = _executor({"warmPool": {"size": 1}})
    result = executor.run("p", RunRequest(("x",), cpu=None), b"in", lambda _: None)
    assert (result.exit_code, result.stdout) == (3, b"out")
    ((kind, demand, payload),) = fake.sent
    assert (kind, demand.pool, demand.warm, demand.resources.sandboxes) == ("run", "p", True, 1)
    pool, request, stdin = request_from_wire(payload)
    assert (pool, request.command, request.timeout, stdin) == ("p", ("x",), 90.0, b"in")


def test_a_run_longer_than_the_dispatch_allows_is_refused() -> None:
    executor, fake = _executor({"containerDefaults": {"timeout": 95}})
    with pytest.raises(InvalidRequest) as refused:
        executor.run("p", RunRequest(("x",)), None, lambda _: None)
    assert "timeout: 95 s" in refused.value.message and fake.sent == []
    executor.run("p", RunRequest(("x",), timeout=5), None, lambda _: None)
    assert request_from_wire(fake.sent[0][2])[1].timeout == 5
