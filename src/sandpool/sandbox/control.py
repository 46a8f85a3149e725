"""The owner's end of a warm runc container's init (``init.c``, mode ``serve``).

A warm runc container is started with one end of a socketpair as its init's stdin; the
owning process keeps the other. A warm one-shot run (``sandbox.warm_run``) sends one request
(argv, env, working directory, and the caller's stdin/stdout/stderr as SCM_RIGHTS): the init
forks and execs it, and once it ends SIGKILLs whatever else runs in the container, replies
with the wait status and exits. A sandbox create that claims the container sends ``keep``
instead: the init stops listening and stays a plain init. If the owner dies while the
container is warm, the init sees end of file and exits (``gc`` removes the rest).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Sequence

__all__ = ["ControlSocket", "decode_status"]

_RUN, _KEEP = b"SPR1", b"SPK1"
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

    def started(self) -> None:
        """The runtime has the child's end now (the init holds it): close ours of it."""
        self.child.close()

    def run(self, argv: Sequence[str], env: Sequence[str], cwd: str,
            fds: tuple[int, int, int]) -> None:  # fmt: skip
        """Hand the init one command to run with the caller's fds (OSError: it is gone)."""
        fields = [cwd, str(len(argv)), *argv, *env]
        payload = b"".join(os.fsencode(field) + b"\0" for field in fields)
        socket.send_fds(self.sock, [_RUN + _LENGTH.pack(len(payload))], list(fds))
        self.sock.sendall(payload)

    def keep(self) -> None:
        """Tell the init it is a sandbox's now: no command will come; close the socket."""
        try:
            self.sock.sendall(_KEEP + _LENGTH.pack(0))
        finally:
            self.close()

    def wait(self, timeout: float | None) -> int | None:
        """The command's wait status; None if ``timeout`` passed first. EOFError if the
        init ended without one (killed, OOM-killed, or the container died)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            left = None if deadline is None else max(0.001, deadline - time.monotonic())
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(64)
            except TimeoutError:
                return None
            if not chunk:
                raise EOFError("the warm container's init ended without a status")
            data += chunk
        kind, _, value = data.strip().partition(b" ")
        if kind != b"X" or not value.lstrip(b"-").isdigit():
            raise EOFError(f"the warm container's init answered {data!r}")
        return int(value)

    def close(self) -> None:
        """Close both ends held here (the init then sees end of file)."""
        self.sock.close()
        self.child.close()
