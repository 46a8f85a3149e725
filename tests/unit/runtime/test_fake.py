"""FakeRuntime keeps the runtime contract the worker relies on, without running the command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandpool.errors import RuntimeCommandFailed
from sandpool.runtime.base import RunFiles
from sandpool.runtime.fake import FakeRuntime


def _start(runtime: FakeRuntime, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    files = RunFiles(tmp_path / "pid", tmp_path / "log")
    spec = {"process": {"args": list(args)}}
    return runtime.run("sp-1", tmp_path, spec, files, stdout=subprocess.PIPE)


def test_echo_writes_the_pid_file_and_prints(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path / "root")
    proc = _start(runtime, tmp_path, "echo", "hi")
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (0, b"hi\n")
    assert int((tmp_path / "pid").read_text()) == proc.pid
    assert runtime.calls == [("run", "sp-1")]


def test_the_spec_command_is_never_run_on_the_host(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path / "root")
    marker = tmp_path / "touched"
    proc = _start(runtime, tmp_path, "touch", str(marker))
    assert proc.wait(timeout=30) == 1
    assert not marker.exists()
    assert not (tmp_path / "pid").exists()  # it never "started"
    assert "executable file not found" in (tmp_path / "log").read_text()


def test_state_kill_and_delete(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path / "root")
    proc = _start(runtime, tmp_path, "sleep", "60")
    assert runtime.state("sp-1").status == "running"
    with pytest.raises(RuntimeCommandFailed, match="cannot delete a running container"):
        runtime.delete("sp-1", force=False)
    runtime.kill("sp-1")
    assert proc.wait(timeout=10) == -9
    assert runtime.state("sp-1").status == "stopped"
    assert [s.id for s in runtime.list()] == ["sp-1"]
    runtime.delete("sp-1", force=False)
    assert not runtime.has_state("sp-1")
    assert runtime.exists("sp-1") is False
    with pytest.raises(RuntimeCommandFailed, match="does not exist"):
        runtime.kill("sp-1")


def test_exec_uses_the_same_convention(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path / "root")
    _start(runtime, tmp_path, "sleep", "60")
    try:
        assert runtime.exec("sp-1", ["exit", "5"]).status == 5
        assert runtime.exec("sp-1", ["echo", "in", "there"]).stdout == "in there\n"
    finally:
        runtime.delete("sp-1")
