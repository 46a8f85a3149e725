"""Placement as Beta9's scheduler does it: pool selector, GPU type, resources, priority, fit."""

from __future__ import annotations

from sandpool.dispatch.models import Demand, Resources, WorkerSpec, WorkerState
from sandpool.dispatch.placement import choose, eligible

GiB = 1 << 30


def worker(wid: str, pool: str = "a", *, cpu: int = 4000, free_cpu: int | None = None,
           priority: int = 0, selector: bool = False, gpu: str = "", gpus: int = 0,
           ok: bool = True, alive: bool = True, warm: int = 0) -> WorkerState:  # fmt: skip
    cap = Resources(cpu, 8 * GiB, gpus, 10)
    free = cap if free_cpu is None else Resources(free_cpu, 8 * GiB, gpus, 10)
    spec = WorkerSpec(pool, "http://127.0.0.1:1", cap, gpu_type=gpu, priority=priority,
                      requires_pool_selector=selector, runtime_ok=ok)  # fmt: skip
    return WorkerState(wid, spec, free, alive, warm)


def need(pool: str | None = "a", cpu: int = 1000, gpus: int = 0, gpu_type: str = "",
         warm: bool = False) -> Demand:  # fmt: skip
    return Demand(pool, Resources(cpu, GiB, gpus, 1), gpu_type, warm)


def test_a_named_pool_goes_only_to_its_workers() -> None:
    assert choose([worker("b1", "b")], need("a")) is None
    chosen = choose([worker("b1", "b"), worker("a1", "a")], need("a"))
    assert chosen is not None and chosen.id == "a1"


def test_a_pool_that_requires_its_selector_takes_only_requests_naming_it() -> None:
    build = worker("x", "build", selector=True)
    assert choose([build], need(None)) is None
    assert choose([build], need("build")) is build
    assert choose([build, worker("d", "default")], need(None)).id == "d"  # type: ignore[union-attr]


def test_dead_workers_and_failed_runtime_checks_never_get_work() -> None:
    assert not eligible(worker("w", alive=False), need())
    assert not eligible(worker("w", ok=False), need())


def test_resources_must_fit_the_free_share() -> None:
    assert choose([worker("w", free_cpu=500)], need(cpu=1000)) is None
    assert choose([worker("w", free_cpu=1000)], need(cpu=1000)) is not None


def test_gpu_requests_need_a_gpu_worker_of_the_type() -> None:
    cpu_only, a10 = worker("c"), worker("g", gpu="A10G", gpus=1)
    assert choose([cpu_only], need(gpus=1)) is None
    assert choose([cpu_only, a10], need(gpus=1)) is a10
    assert choose([a10], need(gpus=1, gpu_type="H100")) is None
    assert choose([a10], need(gpus=1, gpu_type="any")) is a10


def test_priority_first_then_the_tightest_fit() -> None:
    roomy, tight = worker("roomy", free_cpu=4000), worker("tight", free_cpu=1500)
    assert choose([roomy, tight], need()) is tight
    high = worker("high", free_cpu=4000, priority=5)
    assert choose([roomy, tight, high], need()) is high


def test_a_worker_with_a_ready_warm_sandbox_ranks_first_for_a_request_it_matches() -> None:
    tight = worker("tight", free_cpu=1500)  # the best fit
    roomy_warm = worker("roomy", warm=1)
    assert choose([tight, roomy_warm], need(warm=True)) is roomy_warm
    assert choose([tight, roomy_warm], need(warm=False)) is tight  # no match: best fit
    assert choose([tight, worker("roomy", warm=0)], need(warm=True)) is tight  # none ready
    both = [worker("w2", warm=1, free_cpu=3000), worker("w1", warm=3)]
    assert choose(both, need(warm=True)).id == "w2"  # type: ignore[union-attr]  # then fit
    full_warm = worker("full", warm=1, free_cpu=500)
    assert choose([full_warm, tight], need(warm=True)) is tight  # warm but nothing fits
