"""The smoke test's time limits and what it says of a hang, with a stand-in container run (the
real kvm hang is in tests/integration/doctor; there the race below made it flaky)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandpool.doctor import smoke
from sandpool.doctor.report import Check
from sandpool.worker.request import RunResult
from tests.unit.doctor.conftest import Loader

KVM_POOL = (
    "worker:\n  pools:\n    secure:\n      containerRuntime: gvisor\n"
    "      containerRuntimeConfig:\n        gvisorPlatform: kvm\n"
)


@dataclass
class FakeRuntime:
    root: str
    name: str = "gvisor"
    platform: str = "kvm"


class FakeRun:
    """A ``ContainerRun`` that records its limits and ends as ``outcome`` says."""

    seen: dict[str, float] = {}  # noqa: RUF012 - one test at a time
    outcome: dict[str, Any] = {}  # noqa: RUF012

    def __init__(self, pool: Any, runtime: Any, image: Any, request: Any, **kw: Any) -> None:
        FakeRun.seen = {"run": request.timeout, "start": kw["start_timeout"]}
        self.id = "sp-fake"

    def run(self, stdio: Any) -> RunResult:
        return RunResult(self.id, "secure", "gvisor", "kvm", "busybox", **FakeRun.outcome)


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[FakeRun]:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(smoke, "create_runtime", lambda pool, config: FakeRuntime(str(tmp_path)))
    monkeypatch.setattr(smoke, "build_busybox_rootfs", lambda path: path)
    monkeypatch.setattr(smoke, "ContainerRun", FakeRun)
    return FakeRun


def _smoke(load_yaml: Loader, timeout: float) -> Check:
    config = load_yaml(KVM_POOL).resolved
    return smoke.smoke_test(config.pools["secure"], config, timeout)


def test_a_start_that_hangs_meets_the_start_limit_before_the_runs(
    load_yaml: Loader, fake_run: type[FakeRun]
) -> None:
    fake_run.outcome = {"exit_code": 0}
    assert _smoke(load_yaml, 3).status == "ok"
    assert fake_run.seen["start"] == 3
    assert fake_run.seen["run"] > 3  # with equal limits, a loaded host reported exit 124


def test_a_run_that_times_out_is_reported_as_a_hang_with_the_platform_fix(
    load_yaml: Loader, fake_run: type[FakeRun]
) -> None:
    fake_run.outcome = {"exit_code": 124, "timed_out": True}
    check = _smoke(load_yaml, 3)
    assert (check.status, check.message) == (
        "fail",
        "`true` did not finish within 6s (gvisor, platform kvm)",
    )
    assert "use systrap or ptrace" in (check.fix or "")
