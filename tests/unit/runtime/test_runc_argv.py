"""The argv sandpool gives a stand-in ``runc``: ``--root`` first on every verb."""

from __future__ import annotations

import copy
import shutil
import signal
from pathlib import Path

import pytest

from sandpool.runtime.base import Capability, RunFiles
from sandpool.runtime.init import INIT_PATH
from sandpool.runtime.runc import RuncRuntime
from sandpool.runtime.spec import ContainerSpec, build_spec
from tests.unit.runtime.stand_in import verb_index, write_stand_in


def _spec(tmp_path: Path) -> dict[str, object]:
    return build_spec(ContainerSpec(args=("true",), rootfs=tmp_path / "rootfs",
                                    cgroups_path="/sandpool/sp-1/ctr", gpus=1,
                                    gpu_devices="0"))  # fmt: skip


def test_every_verb_starts_with_the_root(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, "runc")
    runtime = RuncRuntime(str(stand_in.path), tmp_path / "state")
    files = RunFiles(tmp_path / "pid", tmp_path / "log")
    assert runtime.run("sp-1", tmp_path, runtime.prepare(_spec(tmp_path)), files).wait(30) == 0
    runtime.exec("sp-1", ["true"])
    runtime.kill("sp-1", signal.SIGKILL)
    runtime.delete("sp-1", force=False)
    runtime.state("sp-1")
    runtime.list()
    assert stand_in.verbs() == ["run", "exec", "kill", "delete", "state", "list"]
    for argv in stand_in.calls():
        assert argv[:2] == ["--root", str(tmp_path / "state")], argv
        assert "--nvproxy=true" not in argv and "--platform" not in argv
    kill, delete = stand_in.calls()[2:4]
    assert kill[verb_index(kill) :] == ["kill", "--all", "sp-1", "9"]
    assert delete[verb_index(delete) :] == ["delete", "sp-1"]


def test_prepare_keeps_the_spec_as_built_and_copies_it(tmp_path: Path) -> None:
    runtime = RuncRuntime("/nonexistent/runc", tmp_path)
    spec = _spec(tmp_path)
    prepared = runtime.prepare(spec)
    namespaces = prepared["linux"]["namespaces"]  # type: ignore[index]
    assert namespaces[-1] == {"type": "cgroup"}  # the container's cgroup is its root
    expected = copy.deepcopy(spec)
    expected["linux"]["namespaces"] = namespaces  # type: ignore[index]
    assert prepared == expected
    assert prepared is not spec
    before = copy.deepcopy(spec)
    prepared["linux"]["resources"].pop("devices")  # type: ignore[index, union-attr]
    assert spec == before


@pytest.mark.skipif(shutil.which("criu") is None, reason="runc checkpoints need criu")
def test_checkpoint_argv(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, "runc")
    runtime = RuncRuntime(str(stand_in.path), tmp_path / "state")
    assert Capability.CHECKPOINT_RESTORE in runtime.capabilities
    runtime.checkpoint("sp-1", tmp_path / "img")
    assert stand_in.calls()[-1] == ["--root", str(tmp_path / "state"), "checkpoint",
                                    "--image-path", str(tmp_path / "img"), "sp-1"]  # fmt: skip


def test_restore_argv_is_detached_with_a_pid_file(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, "runc")
    runtime = RuncRuntime(str(stand_in.path), tmp_path / "state")
    runtime.restore("sp-1", tmp_path / "b", tmp_path / "img", pid_file=tmp_path / "pid")
    assert stand_in.calls()[-1] == ["--root", str(tmp_path / "state"), "restore", "--detach",
                                    "--image-path", str(tmp_path / "img"), "--bundle",
                                    str(tmp_path / "b"), "--pid-file", str(tmp_path / "pid"),
                                    "sp-1"]  # fmt: skip


def test_prepare_with_an_init_runs_the_command_under_it(tmp_path: Path) -> None:
    runtime = RuncRuntime("/nonexistent/runc", tmp_path, init="/usr/bin/tini-static")
    prepared = runtime.prepare(_spec(tmp_path))
    assert prepared["process"]["args"] == [INIT_PATH, "--", "true"]  # type: ignore[index]
    [mount] = [m for m in prepared["mounts"] if m["destination"] == INIT_PATH]  # type: ignore[union-attr]
    assert mount["source"] == "/usr/bin/tini-static" and "ro" in mount["options"]
