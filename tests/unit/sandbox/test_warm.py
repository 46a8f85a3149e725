"""``sandbox.warm.WarmPools`` with a stand-in launcher (no containers): filling, claims and
misses by image and limits, dead warm sandboxes discarded, failing starts backed off, close;
and the ``warmPool`` configuration key."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandpool.config.models import SandpoolConfig
from sandpool.config.resolved import ResolvedConfig, resolve
from sandpool.config.sources import Origins
from sandpool.config.validation import validate
from sandpool.errors import ConfigValidationError, ContainerStartFailed, RuntimeTimeout
from sandpool.runtime.fake import FakeRuntime
from sandpool.sandbox import SandboxInfo, SandboxRequest, SandboxState
from sandpool.sandbox.launch import Launched
from sandpool.sandbox.warm import WarmPools
from sandpool.worker.records import process_start_time

ME = (os.getpid(), process_start_time(os.getpid()) or 0)


def _config(warm: dict[str, Any], defaults: dict[str, Any] | None = None) -> ResolvedConfig:
    pool = {"warmPool": warm, "containerDefaults": defaults or {"memory": "256Mi"}}
    return resolve(SandpoolConfig.model_validate({"worker": {"pools": {"p": pool}}}))


class Launcher:
    """Launches stand-in warm sandboxes (alive: this process's pid) and records discards."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.count = fail, itertools.count()
        self.discarded: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: SandboxRequest) -> Launched:
        if self.fail:
            raise ContainerStartFailed("cannot start")
        info = SandboxInfo(f"sp-{next(self.count)}", request.pool, "runc", None, "img",
                           state=SandboxState.WARM)  # fmt: skip
        return Launched(
            info, FakeRuntime(Path("/nonexistent")), Path("/nonexistent"), *ME, "sha256:x"
        )

    def discard(self, launched: Launched) -> None:
        with self.lock:
            self.discarded.append(launched.info.id)


def _digest(reference: str) -> str:
    return "sha256:x" if reference == "alias" else "sha256:other"


def _pools(launcher: Launcher, size: int = 2, **warm: Any) -> WarmPools:
    return WarmPools(_config({"size": size, **warm}), launcher, launcher.discard)


def test_filled_claimed_and_refilled() -> None:
    launcher = Launcher()
    pools = _pools(launcher)
    try:
        assert pools.wait_ready(10)
        assert {i.id for i in pools.infos()} == {"sp-0", "sp-1"}
        assert all(i.state == "warm" for i in pools.infos())
        taken = pools.claim(SandboxRequest("p", memory="256Mi", env=("A=1",)), _digest)
        assert taken is not None and taken.info.id == "sp-0"
        assert pools.wait_ready(10)
        [stats] = pools.stats()
        assert (stats.claims, stats.misses, stats.ready, stats.refills) == (1, 0, 2, 3)
    finally:
        pools.close()
    assert sorted(launcher.discarded) == ["sp-1", "sp-2"]


@pytest.mark.parametrize(
    "request_",
    [SandboxRequest("p", memory="128Mi"), SandboxRequest("p", pids=7),
     SandboxRequest("p", cpu=0.5), SandboxRequest("p", disk="2Gi"),
     SandboxRequest("p", image="busybox"), SandboxRequest("p", workdir="/elsewhere"),
     SandboxRequest("q")],
)  # fmt: skip
def test_other_limits_image_or_workdir_miss(request_: SandboxRequest) -> None:
    launcher = Launcher()
    pools = _pools(launcher)
    try:
        assert pools.wait_ready(10)
        assert pools.claim(request_, _digest) is None
        assert len(pools.infos()) == 2
        expected = 0 if request_.pool == "q" else 1
        assert pools.stats()[0].misses == expected
    finally:
        pools.close()


def test_same_values_written_otherwise_and_an_image_alias_match() -> None:
    launcher = Launcher()
    pools = _pools(launcher, memory="0.25Gi")
    try:
        assert pools.wait_ready(10)
        assert pools.claim(SandboxRequest("p", memory="256Mi", image="alias"), _digest)
        assert pools.claim(SandboxRequest("p", workdir="/"), _digest) is not None
    finally:
        pools.close()


def test_a_dead_warm_sandbox_is_discarded_not_handed_out() -> None:
    launcher = Launcher()
    pools = _pools(launcher, size=1)
    try:
        assert pools.wait_ready(10)
        [ready] = pools._pools["p"].ready
        ready.pid_start += 1  # its process is gone (another one has its pid)
        taken = pools.claim(SandboxRequest("p"), _digest)
        assert taken is None or taken.info.id != ready.info.id
        assert pools.wait_ready(10)
        assert ready.info.id not in {i.id for i in pools.infos()}
        assert pools.stats()[0].discarded == 1
    finally:
        pools.close()
    assert ready.info.id in launcher.discarded


def test_failing_starts_are_counted_and_backed_off() -> None:
    pools = _pools(Launcher(fail=True))
    try:
        assert not pools.wait_ready(1.5)
        [stats] = pools.stats()
        assert 1 <= stats.failures <= 4 and stats.last_error == "cannot start"
        assert pools.claim(SandboxRequest("p"), _digest) is None
    finally:
        pools.close()


def test_no_warm_pool_no_thread() -> None:
    pools = WarmPools(_config({}), Launcher(), Launcher().discard)
    assert pools._threads == [] and pools.stats() == [] and pools.wait_ready(0)
    pools.close()


@pytest.mark.parametrize(
    ("warm", "problem"),
    [({"size": -1}, "warmPool.size"), ({"size": "2"}, "warmPool.size"),
     ({"size": 100000}, "warmPool.size"), ({"memory": "lots"}, "warmPool.memory"),
     ({"sise": 2}, "warmPool")],
)  # fmt: skip
def test_bad_warm_pool_values_name_the_key(warm: dict[str, Any], problem: str) -> None:
    doc = {"worker": {"pools": {"p": {"warmPool": warm}}}}
    with pytest.raises(ConfigValidationError) as caught:
        validate(doc, Origins())
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_warm_pool_is_resolved_and_shown() -> None:
    config = _config({"size": 3, "pids": 64})
    assert config.pools["p"].warm_pool.size == 3
    assert config.pools["p"].public_dict()["warmPool"]["pids"] == 64
    assert ResolvedConfig.from_json(config.to_json()) == config


def test_a_hanging_start_holds_no_other_pool_and_hands_out_nothing() -> None:
    """Pool ``stuck``'s start hangs (until the start timeout would end it): its creates are
    misses, and pool ``p`` fills all the same."""
    release = threading.Event()
    launcher = Launcher()

    def launch(request: SandboxRequest) -> Launched:
        if request.pool == "stuck":
            release.wait(30)
            raise RuntimeTimeout("sandbox did not start within 60s")
        return launcher(request)

    pools_doc = {"stuck": {"warmPool": {"size": 1}}, "p": {"warmPool": {"size": 2}}}
    config = resolve(SandpoolConfig.model_validate({"worker": {"pools": pools_doc}}))
    pools = WarmPools(config, launch, launcher.discard)
    try:
        deadline = time.monotonic() + 10
        while len([i for i in pools.infos() if i.pool == "p"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert pools.claim(SandboxRequest("stuck"), _digest) is None
        stuck = next(s for s in pools.stats() if s.pool == "stuck")
        assert (stuck.ready, stuck.starting, stuck.misses) == (0, 1, 1)
        release.set()
    finally:
        release.set()
        pools.close()
    stuck = next(s for s in pools.stats() if s.pool == "stuck")
    assert stuck.failures == 1 and "did not start" in (stuck.last_error or "")


@pytest.mark.parametrize(
    ("defaults", "request_", "claimed"),
    [({}, SandboxRequest("p", network="none"), True),
     ({}, SandboxRequest("p", network="open"), False),
     ({}, SandboxRequest("p", allow=("10.0.0.0/8",)), False),
     ({"network": "allow", "allow": ["10.0.0.0/8"]}, SandboxRequest("p"), True),
     ({"network": "allow", "allow": ["10.0.0.0/8"]},
      SandboxRequest("p", allow=("10.0.0.0/8",)), True),
     ({"network": "allow", "allow": ["10.0.0.0/8"]},
      SandboxRequest("p", allow=("10.0.0.0/9",)), False),
     ({}, SandboxRequest("p", network="bogus"), False)],
)  # fmt: skip
def test_warm_sandboxes_have_the_pools_network_policy(defaults: dict[str, Any],
                                                      request_: SandboxRequest,
                                                      claimed: bool) -> None:  # fmt: skip
    """A claim needs the policy the warm sandboxes were made with (the pool's default); a
    bad one is a miss (the cold path names it)."""
    launcher = Launcher()
    pools = WarmPools(_config({"size": 1}, {"memory": "256Mi", **defaults}), launcher,
                      launcher.discard)  # fmt: skip
    try:
        assert pools.wait_ready(10)
        assert (pools.claim(request_, _digest) is not None) == claimed
    finally:
        pools.close()


def test_a_warm_container_a_one_shot_run_claimed_is_not_warm_any_more(tmp_path: Path) -> None:
    """``ps`` shows a claimed one running: the claim's marker, not ``sandbox.json`` (which
    still says warm, so that a dead owner's is never adopted), tells ``is_warm``."""
    from sandpool.sandbox.launch import CLAIMED_FILE, is_warm, save_sandbox_file

    info = SandboxInfo("sp-x", "p", "runc", None, "builtin:busybox", state=SandboxState.WARM)
    save_sandbox_file(tmp_path, info, *ME)
    assert is_warm(tmp_path)
    (tmp_path / CLAIMED_FILE).touch()
    assert not is_warm(tmp_path)
    assert not is_warm(tmp_path / "nothing-here")
