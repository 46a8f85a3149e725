"""The client half of ``warm.sandbox_ops``: send one ``sandpool sandbox`` request to the
running ``sandpool serve`` and collect its result and exit status.

Returns None when no server listens: sandboxes belong to the process that serves them, so
the CLI then says so rather than creating a sandbox that would die with it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

from sandpool.errors import EXIT_CANNOT_START
from sandpool.warm.protocol import MAX_MESSAGE, decode, encode, socket_path

__all__ = ["Served", "call_served"]


class Served:
    """What the server answered: ``result`` (JSON data or None) and the ``exit`` status."""

    def __init__(self) -> None:
        self.result: Any = None
        self.exit = EXIT_CANNOT_START


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def call_served(op: str, args: Mapping[str, Any], config_files: tuple[str, ...],
                environ: Mapping[str, str] | None = None) -> Served | None:  # fmt: skip
    """Do ``op`` in the running server; None if none listens."""
    environ = os.environ if environ is None else environ
    path = socket_path(environ)
    sock = _connect(path) if path else None
    if sock is None:
        return None
    env = {k: v for k, v in environ.items() if k.startswith("SANDPOOL_")}
    message = encode({"sandbox": op, "args": dict(args), "config": list(config_files),
                      "cwd": os.getcwd(), "env": env})  # fmt: skip
    with sock:
        socket.send_fds(sock, [message], [0, 1, 2])

        def forward(signum: int, frame: FrameType | None) -> None:
            try:  # noqa: SIM105
                sock.send(encode({"signal": signum}))
            except OSError:
                pass

        previous = [signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            return _collect(sock)
        finally:
            for signum, handler in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
                signal.signal(signum, handler)


def _collect(sock: socket.socket) -> Served:
    served = Served()
    while True:
        data = sock.recv(MAX_MESSAGE)
        if not data:
            sys.stderr.write("sandpool: `sandpool serve` went away during the request\n")
            return served
        message = decode(data)
        if "result" in message:
            served.result = message["result"]
        if "exit" in message:
            served.exit = int(str(message["exit"]))
            return served
