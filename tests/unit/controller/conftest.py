"""Helpers shared by the controller tests: load a configuration from inline YAML."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from tests.unit.controller.fake_kube import FakeKubeAPI

Loader = Callable[[str], LoadedConfig]


@pytest.fixture
def load_yaml(tmp_path: Path) -> Loader:
    """Load a configuration document given as text (no environment variables applied)."""
    counter = iter(range(1000))

    def load(text: str) -> LoadedConfig:
        path = tmp_path / f"config-{next(counter)}.yaml"
        path.write_text(text)
        return LoadedConfig.load([str(path)], {})

    return load


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    """A running fake Kubernetes API server (see fake_kube.py)."""
    api = FakeKubeAPI().start()
    yield api
    api.stop()
