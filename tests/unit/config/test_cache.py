"""The resolved-config cache: a hit equals a fresh load; any changed input is a miss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.config.cache import load_resolved
from sandpool.errors import ConfigError

CONFIG = "worker:\n  pools:\n    p:\n      containerRuntime: {crt}\n"


def _write(path: Path, crt: str) -> str:
    path.write_text(CONFIG.format(crt=crt))
    return str(path)


def test_hit_equals_a_fresh_load_and_changes_invalidate(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cfg = _write(tmp_path / "c.yaml", "runc")
    first = load_resolved([cfg], {}, directory=cache)
    assert first == LoadedConfig.load([cfg], {}).resolved
    assert load_resolved([cfg], {}, directory=cache) == first
    assert len(list(cache.glob("*.json"))) == 1
    _write(tmp_path / "c.yaml", "gvisor")  # content and size change
    assert load_resolved([cfg], {}, directory=cache).pool("p").container_runtime == "gvisor"
    env = {"SANDPOOL_WORKER_POOLS_P_CONTAINERRUNTIME": "runc"}
    assert load_resolved([cfg], env, directory=cache).pool("p").container_runtime == "runc"


def test_corrupt_entry_is_ignored_and_errors_are_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cfg = _write(tmp_path / "c.yaml", "runc")
    expected = load_resolved([cfg], {}, directory=cache)
    for entry in cache.glob("*.json"):
        entry.write_text("{not json")
    assert load_resolved([cfg], {}, directory=cache) == expected
    bad = _write(tmp_path / "bad.yaml", "rkt")
    for _ in range(2):
        with pytest.raises(ConfigError):
            load_resolved([bad], {}, directory=cache)
    with pytest.raises(ConfigError):
        load_resolved([str(tmp_path / "missing.yaml")], {}, directory=cache)
    assert os.listdir(cache) == [next(iter(os.listdir(cache)))]  # still only the good entry
