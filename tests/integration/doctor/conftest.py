"""A throw-away sandpool installation per test (tmp stateDir, gvisorRoot, cgroupParent); the
doctor runs as a real ``sandpool`` subprocess, and afterwards nothing may be left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import Sandbox, reachable_tmp_dir


@dataclass(frozen=True)
class Doctored:
    """One finished ``sandpool doctor --json`` run."""

    status: int
    body: dict[str, Any]
    stderr: str

    def check(self, pool: str | None, name: str) -> dict[str, Any]:
        """The one check called ``name`` for ``pool`` (None: the host)."""
        (found,) = [c for c in self.body["checks"] if (c["pool"], c["check"]) == (pool, name)]
        return dict(found)


Doctor = Callable[..., Doctored]


def leftovers(box: Sandbox) -> list[str]:
    """What the shared integration check finds, plus the doctor's scratch dirs and runsc files."""
    found = box.leftovers()
    if box.state_dir.exists():
        found += [f"scratch {p}" for p in box.state_dir.glob(".doctor-*")]
    if box.gvisor_root.exists():
        found += [f"gvisorRoot file {p}" for p in box.gvisor_root.iterdir()]
    return found


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """A sandbox with a test-specific cgroup parent; fails the test if anything is left."""
    with reachable_tmp_dir() as base:
        sandbox = Sandbox(base)
        sandbox.cgroup_parent = f"sp-doctor-test-{os.getpid()}"
        yield sandbox
        left = leftovers(sandbox)
        sandbox.remove_parent_cgroups()
        assert left == []


@pytest.fixture
def doctor(box: Sandbox) -> Doctor:
    """Write ``pools`` (YAML under worker.pools) and run ``sandpool doctor --json ARGS``."""

    def run(pools: str, *args: str, worker: str = "") -> Doctored:
        box.config_file.write_text(
            f"worker:\n  stateDir: {box.state_dir}\n  cgroupParent: {box.cgroup_parent}\n"
            f"{worker}  pools:\n" + pools.replace("GVISOR_ROOT", str(box.gvisor_root))
        )
        argv = [
            sys.executable,
            "-c",
            "from sandpool.cli.main import main; main()",
            "doctor",
            "-c",
            str(box.config_file),
            "--json",
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return Doctored(done.returncode, json.loads(done.stdout), done.stderr)

    return run
