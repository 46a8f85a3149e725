"""The owner's end of a warm runc container's init (``init.c``, mode ``serve``).

A runc sandbox container is started with one end of a socketpair as its init's stdin; the
process that started it keeps the other. A warm one-shot run (``sandbox.warm_run``) sends one
request (argv, env, working directory, and the caller's stdin/stdout/stderr as SCM_RIGHTS):
the init forks and execs it, and once it ends SIGKILLs whatever else runs in the container,
replies with the wait status and exits. A sandbox (a cold create, or a create that claimed a
warm one) is told ``claim`` instead; its execs then start through the init too
(``ControlProcess``: no ``runc exec`` process), each with a status pipe of its own. If the
owner dies while the container is warm, the init sees end of file and exits (``gc`` removes
the rest); a sandbox's init stops listening and lives on (an adopter uses ``runc exec``).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Sequence

__all__ = ["ControlSocket", "decode_status"]

_RUN, _EXEC, _KILLPG, _CLAIM = b"SPR1", b"SPE1", b"SPG1", b"SPK1"
_LENGTH = struct.Struct("=I")


def decode_status(status: int) -> int:
    """A wait status as an exit code (128 + the signal for a killed process)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class ControlSocket:
    """One warm container's control socket, owned by the process that started it."""

    def __init__(self) -> None:
        self.sock, self.child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._lock = threading.Lock()  # one request at a time on the stream
        self._reply = b""  # a reply's part read before a wait timed out

    def started(self) -> None:
        """The runtime has the child's end now (the init holds it): close ours of it."""
        self.child.close()

    def run(self, argv: Sequence[str], env: Sequence[str], cwd: str,
            fds: tuple[int, int, int]) -> None:  # fmt: skip
        """Hand the init one command to run with the caller's fds (OSError: it is gone)."""
        self._send(_RUN, _command(argv, env, cwd), fds)

    def exec(self, argv: Sequence[str], env: Sequence[str], cwd: str,
             fds: tuple[int, int, int, int]) -> None:  # fmt: skip
        """Start a sandbox exec with stdin, stdout, stderr and a status pipe's write end."""
        self._send(_EXEC, _command(argv, env, cwd), fds)

    def killpg(self, pid: int) -> None:
        """SIGKILL the process group ``pid`` (in the container's pid namespace)."""
        self._send(_KILLPG, f"{pid}\0".encode(), ())

    def claim(self) -> None:
        """Tell the init it is a sandbox's: it outlives this end (no one-shot run comes)."""
        self._send(_CLAIM, b"", ())

    def _send(self, kind: bytes, payload: bytes, fds: Sequence[int]) -> None:
        with self._lock:
            header = kind + _LENGTH.pack(len(payload))
            if fds:
                socket.send_fds(self.sock, [header], list(fds))
            else:
                self.sock.sendall(header)
            self.sock.sendall(payload)

    def wait(self, timeout: float | None) -> int | None:
        """The command's wait status; None if ``timeout`` passed first. EOFError if the
        init ended without one (killed, OOM-killed, or the container died)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._reply.endswith(b"\n"):
            left = None if deadline is None else max(0.001, deadline - time.monotonic())
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(64)
            except TimeoutError:
                return None
            if not chunk:
                raise EOFError("the warm container's init ended without a status")
            self._reply += chunk
        data, self._reply = self._reply, b""
        kind, _, value = data.strip().partition(b" ")
        if kind != b"X" or not value.lstrip(b"-").isdigit():
            raise EOFError(f"the warm container's init answered {data!r}")
        return int(value)

    def closed(self) -> bool:
        """Whether this end was closed here."""
        return self.sock.fileno() < 0

    def close(self) -> None:
        """Close both ends held here (the init then sees end of file)."""
        self.sock.close()
        self.child.close()


def _command(argv: Sequence[str], env: Sequence[str], cwd: str) -> bytes:
    fields = [cwd, str(len(argv)), *argv, *env]
    return b"".join(os.fsencode(field) + b"\0" for field in fields)
