"""Fixtures for the sandbox tests: a Sandpool per test over the session's state dir, gVisor
root and cgroup parent, with small pools for the limits; after each test, nothing is left."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from tests.integration.conftest import Sandbox as Installation

RUNTIMES = [
    pytest.param("runc", marks=[pytest.mark.root, pytest.mark.runc], id="runc"),
    pytest.param("gvisor", marks=[pytest.mark.root, pytest.mark.runsc], id="gvisor"),
]
OUTPUT_BOUND = 64 << 10  # maxOutput of the small pools
DISK_BOUND = 16 << 20


def _pools(install: Installation) -> str:
    text = f"worker:\n  stateDir: {install.state_dir}\n  cgroupParent: {install.cgroup_parent}\n"
    text += "  pools:\n"
    for runtime in ("runc", "gvisor"):
        extra = f"      containerRuntimeConfig:\n        gvisorRoot: {install.gvisor_root}\n"
        extra = extra if runtime == "gvisor" else ""
        text += f"    {runtime}:\n      containerRuntime: {runtime}\n{extra}"
        text += (f"    small-{runtime}:\n      containerRuntime: {runtime}\n{extra}"
                 f"      containerDefaults:\n        memory: 96Mi\n        disk: 16Mi\n"
                 f"        maxOutput: 64Ki\n        pids: 64\n")  # fmt: skip
        text += (f"    ttl-{runtime}:\n      containerRuntime: {runtime}\n{extra}"
                 "      containerDefaults:\n        ttl: 2\n        idleTimeout: 60\n")  # fmt: skip
    return text


@pytest.fixture
def boxes(sandbox: Installation) -> Iterator[Sandpool]:
    """A Sandpool whose pools are named after their runtime (``runc``, ``gvisor``,
    ``small-…``, ``ttl-…``); closed after the test (terminating its sandboxes), then the
    session's installation must hold nothing."""
    config = sandbox.base / "sandbox-pools.yaml"
    config.write_text(_pools(sandbox))
    with Sandpool(LoadedConfig.load([str(config)], {}).resolved) as sp:
        yield sp
    assert sandbox.leftovers() == []
