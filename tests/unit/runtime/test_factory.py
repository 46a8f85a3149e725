"""From a pool to its runtime: the binary it names, the platform chosen, never a fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import PlatformNotSupported, RuntimeNotAvailable
from sandpool.runtime.factory import create_runtime
from sandpool.runtime.gvisor import GvisorRuntime
from sandpool.runtime.probe import probe_runsc
from sandpool.runtime.runc import RuncRuntime
from tests.unit.runtime.stand_in import write_stand_in

POOL = ResolvedPool(
    name="default", mode="cpu", gpu_type="", runtime=None, container_runtime="gvisor",
    gvisor_platform=None, gvisor_root="/run/sandpool/runsc", gvisor_extra_args=("--debug",),
    container_start_concurrency=None, memory="512Mi", pids=256, cpu=None, timeout=None,
)  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    probe_runsc.cache_clear()
    yield
    probe_runsc.cache_clear()


def _config(tmp_path: Path, runc: str = "/x/runc", runsc: str = "/x/runsc") -> ResolvedConfig:
    return ResolvedConfig(runc_path=runc, runsc_path=runsc, state_dir=str(tmp_path / "state"),
                          default_image="builtin:busybox")  # fmt: skip


def test_missing_runsc_is_an_exact_error_not_a_fallback(tmp_path: Path) -> None:
    runc = write_stand_in(tmp_path, "runc")
    with pytest.raises(RuntimeNotAvailable) as caught:
        create_runtime(POOL, _config(tmp_path, runc=str(runc.path)))
    assert str(caught.value) == (
        "failed to create gvisor runtime: runsc not found at /x/runsc "
        "(install the runsc package or set worker.runscPath)"
    )
    assert runc.calls() == []


def test_missing_runc(tmp_path: Path) -> None:
    pool = replace(POOL, container_runtime="runc")
    with pytest.raises(RuntimeNotAvailable, match="runc not found at /x/runc"):
        create_runtime(pool, _config(tmp_path))


def test_unset_platform_is_systrap_when_offered_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runsc = write_stand_in(tmp_path, platforms=("kvm", "ptrace", "systrap"))
    with caplog.at_level(logging.INFO, logger="sandpool.runtime.factory"):
        runtime = create_runtime(POOL, _config(tmp_path, runsc=str(runsc.path)))
    assert isinstance(runtime, GvisorRuntime)
    assert runtime.platform == "systrap"
    assert runtime.root == Path("/run/sandpool/runsc")
    assert runtime.extra_args == ("--debug",)
    assert "gvisorPlatform unset, using systrap" in caplog.text


def test_unset_platform_is_ptrace_without_systrap(tmp_path: Path) -> None:
    runsc = write_stand_in(tmp_path, platforms=("kvm", "ptrace"))
    runtime = create_runtime(POOL, _config(tmp_path, runsc=str(runsc.path)))
    assert runtime.platform == "ptrace"


def test_explicit_platform_runsc_lacks(tmp_path: Path) -> None:
    runsc = write_stand_in(tmp_path, platforms=("kvm", "ptrace"), version="0.0~20221219.0")
    pool = replace(POOL, gvisor_platform="systrap")
    with pytest.raises(PlatformNotSupported, match=r"0\.0~20221219\.0.*kvm, ptrace"):
        create_runtime(pool, _config(tmp_path, runsc=str(runsc.path)))


def test_runc_pool_gets_runc_under_the_state_dir(tmp_path: Path) -> None:
    runc = write_stand_in(tmp_path, "runc")
    runtime = create_runtime(replace(POOL, container_runtime="runc"),
                             _config(tmp_path, runc=str(runc.path)))  # fmt: skip
    assert isinstance(runtime, RuncRuntime)
    assert runtime.root == tmp_path / "state" / "runc"
    assert runtime.platform is None


def test_a_name_is_looked_up_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runsc = write_stand_in(tmp_path, platforms=("ptrace",))
    monkeypatch.setenv("PATH", str(tmp_path))
    runtime = create_runtime(POOL, _config(tmp_path, runsc="runsc"))
    assert runtime.binary == str(runsc.path)


def test_a_file_that_is_not_executable_counts_as_missing(tmp_path: Path) -> None:
    runsc = write_stand_in(tmp_path)
    runsc.path.chmod(0o644)
    with pytest.raises(RuntimeNotAvailable, match="runsc not found at"):
        create_runtime(POOL, _config(tmp_path, runsc=str(runsc.path)))


@pytest.mark.parametrize("runtime", ["runc", "gvisor"])
def test_every_runtime_gets_tini_as_its_containers_init(
    tmp_path: Path, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runc, runsc = write_stand_in(tmp_path, "runc"), write_stand_in(tmp_path)
    config = _config(tmp_path, runc=str(runc.path), runsc=str(runsc.path))
    pool = replace(POOL, container_runtime=runtime, gvisor_platform="ptrace")
    monkeypatch.setattr("sandpool.runtime.factory.find_init", lambda: "/usr/bin/tini-static")
    assert create_runtime(pool, config).init == "/usr/bin/tini-static"
    monkeypatch.setattr("sandpool.runtime.factory.find_init", lambda: None)
    with pytest.raises(RuntimeNotAvailable, match=f"failed to create {runtime} runtime: no init "
                       r"for its containers \(tini-static not found\)"):  # fmt: skip
        create_runtime(pool, config)
