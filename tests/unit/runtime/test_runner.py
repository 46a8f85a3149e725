"""The one subprocess runner: streams apart, typed failures, timeouts that kill the group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sandpool.errors import RuntimeCommandFailed, RuntimeNotAvailable, RuntimeTimeout
from sandpool.runtime.runner import run_command, spawn

PY = sys.executable


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_stdout_is_returned_apart_from_stderr() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    result = run_command([PY, "-c", code])
    assert (result.status, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert result.argv == (PY, "-c", code)


def test_input_text_reaches_stdin() -> None:
    result = run_command([PY, "-c", "import sys; print(sys.stdin.read().upper())"],
                         input_text="hello")  # fmt: skip
    assert result.stdout == "HELLO\n"


def test_non_zero_exit_is_a_typed_error_with_argv_status_and_stderr() -> None:
    argv = [PY, "-c", "import sys; print('partial'); sys.exit('container not found')"]
    with pytest.raises(RuntimeCommandFailed) as caught:
        run_command(argv)
    assert caught.value.argv == argv
    assert caught.value.status == 1
    assert caught.value.stderr == "container not found\n"
    assert "exited 1: container not found" in str(caught.value)


def test_check_false_returns_the_status() -> None:
    result = run_command([PY, "-c", "raise SystemExit(7)"], check=False)
    assert result.status == 7


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    began = time.monotonic()
    with pytest.raises(RuntimeTimeout, match="did not finish within 1s"):
        run_command([PY, "-c", code], timeout=1)
    assert time.monotonic() - began < 10
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), f"grandchild sleep {grandchild} survived the timeout"


def test_missing_binary_is_runtime_not_available(tmp_path: Path) -> None:
    with pytest.raises(RuntimeNotAvailable, match=str(tmp_path / "runsc")):
        run_command([str(tmp_path / "runsc"), "--version"])


def test_a_file_that_cannot_be_executed_is_runtime_not_available(tmp_path: Path) -> None:
    binary = tmp_path / "runc"
    binary.write_text("not a program")
    binary.chmod(0o644)
    with pytest.raises(RuntimeNotAvailable):
        run_command([str(binary)])


def test_spawn_missing_binary_is_runtime_not_available(tmp_path: Path) -> None:
    with pytest.raises(RuntimeNotAvailable):
        spawn([str(tmp_path / "runc"), "run"])


def test_spawn_starts_a_session_of_its_own() -> None:
    proc = spawn([PY, "-c", "import os; print(os.getsid(0) == os.getpid())"], stdout=-1)
    out, _ = proc.communicate(timeout=30)
    assert out == b"True\n"
    assert os.getsid(0) != proc.pid
