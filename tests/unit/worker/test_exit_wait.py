"""``worker.exit_wait.wait_exit``: woken by the exit (no sleep-and-look loop), the timeout
and the return code as ``Popen.wait`` tells them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sandpool.worker import exit_wait
from sandpool.worker.exit_wait import wait_exit


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_exit_is_seen_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Popen.wait(timeout)`` sleeps between looks (``time.sleep``); ``wait_exit`` does not."""
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)  # what Popen.wait(timeout) sleeps with
    proc = _child("import time, sys; time.sleep(0.3); sys.exit(5)")
    assert wait_exit(proc, 30) == 5
    assert proc.returncode == 5 and sleeps == []


def test_the_timeout_raises_and_leaves_the_process_running() -> None:
    proc = _child("import time; time.sleep(30)")
    try:
        start = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            wait_exit(proc, 0.2)
        assert 0.15 < time.monotonic() - start < 10 and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert wait_exit(proc, 1) == proc.returncode == -9  # already reaped: told at once


def test_a_signal_is_a_negative_return_code() -> None:
    proc = _child("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert wait_exit(proc, 30) == -15


def test_without_a_pidfd_it_falls_back_to_popen_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(exit_wait.os, "pidfd_open", no_pidfd)
    proc = _child("pass")
    assert wait_exit(proc, 30) == 0
