"""A sandbox exec started by its runc init over the control socket (``sandbox.control``).

``ControlProcess`` is the part of ``subprocess.Popen`` that ``ExecProcess`` uses (``stdin``,
``stdout``, ``stderr`` pipes, ``poll``, ``wait``) plus ``kill_group``. The init forks and
execs the command as ``init exec`` does (working directory, ``setsid``, 126/127) and writes
``P <pid>`` then ``X <wait status>`` on a pipe of the exec's own; end of file there means the
init (the sandbox) ended, which reads as SIGKILL. No ``runc exec`` process is started: that
process is most of a runc exec's cost.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import IO

from sandpool.runtime.spec import DEFAULT_PATH
from sandpool.sandbox.control import ControlSocket, decode_status

__all__ = ["ControlProcess", "merged_env"]


def merged_env(*entries: str) -> tuple[str, ...]:
    """``entries`` with a default PATH first, a later entry of a name replacing an earlier
    one in its place (the env runc and runsc give a process)."""
    merged: dict[str, str] = {}
    for entry in (DEFAULT_PATH, *entries):
        merged[entry.partition("=")[0]] = entry
    return tuple(merged.values())


class ControlProcess:
    """One exec through the init; OSError from the constructor if it could not start."""

    def __init__(self, control: ControlSocket, argv: Sequence[str], env: Sequence[str],
                 cwd: str, *, stdin: bool) -> None:  # fmt: skip
        self._control = control
        self._lock = threading.Lock()
        self.returncode: int | None = None
        ends: list[int] = []  # the init's ends, closed here once sent
        try:
            in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self._status, status_w = os.pipe()
            ends = [in_r, out_w, err_w, status_w]
            control.exec(argv, env, cwd, (in_r, out_w, err_w, status_w))
        finally:
            for fd in ends:
                os.close(fd)
        self.stdin: IO[bytes] | None = os.fdopen(in_w, "wb") if in_w >= 0 else None
        self.stdout: IO[bytes] = os.fdopen(out_r, "rb")
        self.stderr: IO[bytes] = os.fdopen(err_r, "rb")
        self._buffer = b""
        started = self._line(None)
        if started is None or not started.startswith(b"P "):
            self._close_all()
            raise OSError("the sandbox's init did not start the exec")
        self.pid = int(started[2:])  # in the container's pid namespace: its group's id

    def _line(self, timeout: float | None) -> bytes | None:
        """The status pipe's next line (None: ``timeout`` passed; b"": end of file)."""
        poller = select.poll()
        poller.register(self._status, select.POLLIN)
        while b"\n" not in self._buffer:
            if not poller.poll(None if timeout is None else int(timeout * 1000)):
                return None
            chunk = os.read(self._status, 64)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def poll(self) -> int | None:
        """The exit code (negative: the signal) once the command ended, else None."""
        self._collect(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end (subprocess.TimeoutExpired past ``timeout``); the exit code."""
        if not self._collect(timeout) or self.returncode is None:
            raise subprocess.TimeoutExpired("exec", timeout or 0)
        return self.returncode

    def _collect(self, timeout: float | None) -> bool:
        """Whether the command ended (its code is then in ``returncode``)."""
        with self._lock:
            if self.returncode is not None:
                return True
            line = self._line(timeout)
            if line is None:
                return False
            if line.startswith(b"X "):
                status = int(line[2:])
                self.returncode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                                   else decode_status(status))  # fmt: skip
            else:  # end of file: the init ended, the sandbox was killed
                self.returncode = -int(signal.SIGKILL)
            os.close(self._status)
            return True

    def kill_group(self) -> None:
        """SIGKILL the exec's process group (the init does it)."""
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._control.killpg(self.pid)

    def _close_all(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        os.close(self._status)
