"""``containerDefaults.ttl`` / ``idleTimeout`` (sandboxes): unset by default, bad values named."""

from __future__ import annotations

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import resolve
from sandpool.config.sources import Origins
from sandpool.config.validation import validate
from sandpool.errors import ConfigValidationError


def _pool(defaults: dict[str, object]) -> dict[str, object]:
    return {"worker": {"pools": {"p": {"containerDefaults": defaults}}}}


def test_unset_by_default_and_shown() -> None:
    pool = resolve(SandpoolConfig.model_validate(_pool({}))).pools["p"]
    assert (pool.ttl, pool.idle_timeout) == (None, None)
    set_ = resolve(SandpoolConfig.model_validate(_pool({"ttl": 300, "idleTimeout": 60.5})))
    shown = set_.pools["p"].public_dict()["containerDefaults"]
    assert (shown["ttl"], shown["idleTimeout"]) == (300, 60.5)


@pytest.mark.parametrize(
    ("defaults", "problem"),
    [({"ttl": 0}, "containerDefaults.ttl"),
     ({"ttl": "soon"}, "containerDefaults.ttl"),
     ({"idleTimeout": -1}, "containerDefaults.idleTimeout")],
)  # fmt: skip
def test_bad_values_name_the_key(defaults: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate(_pool(defaults), Origins())
    assert any(problem in line for line in caught.value.problems), caught.value.problems
