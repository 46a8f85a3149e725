"""What the gateway tells placement about warm sandboxes and how a one-shot run travels: a
create or run matches its pool's warm template (image, limits, network) or not, the demand
carries it; a run request and its result survive the trip to the worker and back."""

from __future__ import annotations

from typing import Any

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import ResolvedConfig, resolve
from sandpool.dispatch.gateway import demand_for
from sandpool.dispatch.models import Demand
from sandpool.dispatch.placement_warm import warm_could_serve, warm_could_serve_run
from sandpool.dispatch.run_wire import (
    request_from_wire,
    request_to_wire,
    result_from_wire,
    result_to_wire,
)
from sandpool.sandbox.models import SandboxRequest
from sandpool.worker.request import RunRequest, RunResult


def _config(warm: dict[str, Any]) -> ResolvedConfig:
    pool = {"warmPool": warm, "containerDefaults": {"memory": "256Mi"}}
    return resolve(SandpoolConfig.model_validate({"worker": {"pools": {"p": pool}}}))


@pytest.mark.parametrize(
    ("asks", "matches"),
    [({}, True), ({"memory": "256Mi"}, True), ({"memory": "512Mi"}, False),
     ({"cpu": 2.0}, False), ({"image": "other:1"}, False), ({"workdir": "/tmp"}, False),
     ({"network": "open"}, False)],
)  # fmt: skip
def test_a_create_matches_the_warm_template_or_not(asks: dict[str, Any], matches: bool) -> None:
    config = _config({"size": 1})
    request = SandboxRequest("p", **asks)
    assert warm_could_serve(request, config) is matches
    assert demand_for(request, config).warm is matches
    assert not warm_could_serve(request, _config({"size": 0}))  # no warm pool: never


def test_a_run_matches_only_without_gpus_and_network() -> None:
    config = _config({"size": 2, "cpu": 1.0})
    pool = config.pool("p")
    assert warm_could_serve_run(RunRequest(("true",), cpu=1.0), pool, config.default_image)
    assert not warm_could_serve_run(RunRequest(("true",)), pool, config.default_image)  # cpu
    assert not warm_could_serve_run(RunRequest(("true",), cpu=1.0, gpus=1), pool,
                                    config.default_image)  # fmt: skip
    assert not warm_could_serve_run(RunRequest(("true",), cpu=1.0, network="open"), pool,
                                    config.default_image)  # fmt: skip


def test_a_demand_keeps_its_warm_flag_through_json() -> None:
    demand = demand_for(SandboxRequest("p"), _config({"size": 1}))
    assert Demand.from_json(demand.to_json()) == demand and demand.warm


def test_a_run_and_its_result_survive_the_wire() -> None:
    request = RunRequest(("sh", "-c", "exit 3"), cpu=0.5, env=("A=1",), allow=("10.0.0.1",))
    pool, back, stdin = request_from_wire(request_to_wire("p", request, b"\x00in"))
    assert (pool, back, stdin) == ("p", request, b"\x00in")
    result = RunResult("r1", "p", "runc", None, "img", exit_code=3, oom_killed=True,
                       stdout=b"\xffout", stderr=None, stdout_dropped=4)  # fmt: skip
    assert result_from_wire(result_to_wire(result)) == result
