"""``containerDefaults.disk`` / ``maxOutput`` / ``gpuSharing``: defaults, and bad sizes named."""

from __future__ import annotations

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import resolve
from sandpool.config.sources import Origins
from sandpool.config.validation import validate
from sandpool.errors import ConfigValidationError
from sandpool.sizes import format_size, parse_size


def _pool(defaults: dict[str, object]) -> dict[str, object]:
    return {"worker": {"pools": {"p": {"containerDefaults": defaults}}}}


def test_defaults() -> None:
    pool = resolve(SandpoolConfig.model_validate(_pool({}))).pools["p"]
    assert (pool.disk, pool.max_output, pool.gpu_sharing) == ("1Gi", "16Mi", False)
    shown = pool.public_dict()["containerDefaults"]
    assert (shown["disk"], shown["maxOutput"], shown["gpuSharing"]) == ("1Gi", "16Mi", False)


@pytest.mark.parametrize(
    ("defaults", "problem"),
    [({"disk": "10k"}, "containerDefaults.disk: expected a size of at least 1Mi"),
     ({"disk": "lots"}, "containerDefaults.disk: expected a size such as 512Mi"),
     ({"maxOutput": "-1"}, "containerDefaults.maxOutput: expected a size such as 512Mi"),
     ({"gpuSharing": "yes"}, "containerDefaults.gpuSharing: expected true or false")],
)  # fmt: skip
def test_bad_values_name_the_key(defaults: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate(_pool(defaults), Origins())
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_sizes() -> None:
    assert parse_size("1Mi", 1 << 20) == 1 << 20
    with pytest.raises(ValueError, match="at least 1Mi"):
        parse_size("1023Ki", 1 << 20)
    assert [format_size(v) for v in (1 << 30, 16 << 20, 1536)] == ["1Gi", "16Mi", "1536"]
