"""``has_state``: the on-disk check that spares clean-up a ``runtime state`` exec."""

from __future__ import annotations

from pathlib import Path

from sandpool.runtime.gvisor import GvisorRuntime
from sandpool.runtime.probe import RunscInfo
from sandpool.runtime.runc import RuncRuntime


def test_runc_state_is_the_directory_named_after_the_container(tmp_path: Path) -> None:
    runtime = RuncRuntime("/usr/sbin/runc", tmp_path)
    assert not runtime.has_state("sp-1")
    (tmp_path / "sp-1").mkdir()
    assert runtime.has_state("sp-1")
    assert not runtime.has_state("sp-2")


def test_runsc_state_is_the_sandbox_state_file(tmp_path: Path) -> None:
    info = RunscInfo("/usr/bin/runsc", "test", ("ptrace",), frozenset())
    runtime = GvisorRuntime(info, tmp_path / "root", "ptrace")
    assert not runtime.has_state("sp-1")  # a root that does not exist yet
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "sp-1_sandbox:sp-1.state").touch()
    assert runtime.has_state("sp-1")
    assert not runtime.has_state("sp-2")
