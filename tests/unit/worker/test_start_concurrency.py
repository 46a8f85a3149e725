"""How many starts of a pool may be in flight: per CPU by runtime, capped, overridable."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandpool.api import start_concurrency
from sandpool.config.resolved import ResolvedPool

RUNC = ResolvedPool(
    name="performance", mode="cpu", gpu_type="", runtime=None, container_runtime="runc",
    gvisor_platform=None, gvisor_root="/run/sandpool/runsc", gvisor_extra_args=(),
    container_start_concurrency=None, memory="512Mi", pids=256, cpu=None, timeout=None,
)  # fmt: skip
GVISOR = replace(RUNC, name="default", container_runtime="gvisor")


@pytest.mark.parametrize(
    ("pool", "cpus", "expected"),
    [(RUNC, 1, 2), (RUNC, 4, 8), (RUNC, 16, 32), (RUNC, 64, 32),
     (GVISOR, 1, 4), (GVISOR, 4, 16), (GVISOR, 8, 32), (GVISOR, 64, 32)],
)  # fmt: skip
def test_per_cpu_and_capped(pool: ResolvedPool, cpus: int, expected: int) -> None:
    assert start_concurrency(pool, cpus) == expected


@pytest.mark.parametrize("pool", [RUNC, GVISOR])
def test_container_start_concurrency_overrides(pool: ResolvedPool) -> None:
    assert start_concurrency(replace(pool, container_start_concurrency=3), 64) == 3
    assert start_concurrency(replace(pool, container_start_concurrency=100), 1) == 100
