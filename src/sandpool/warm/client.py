"""The thin ``sandpool run`` client: hand the run to a warm ``sandpool serve`` (or a ``sandpool
server`` on the same socket) if one listens, as a structured request (``warm.run_argv``).

``run_served`` returns None when no server takes the run (no socket, nobody listening,
arguments the thin parser leaves to click, a message too large, an fd that cannot be passed):
the caller then runs in-process, with the same behaviour. Once the server took the run, its
exit status is final. Standard library only (plus ``warm.protocol``, ``warm.messages`` and
``warm.run_argv``): this is the whole cost of a served ``sandpool run``.
"""

from __future__ import annotations

import os
import signal
import socket

from sandpool.stdfds import write_all
from sandpool.warm.messages import BadMessage, parse_exit
from sandpool.warm.protocol import MAX_MESSAGE, encode, socket_path
from sandpool.warm.run_argv import parse_argv

TYPE_CHECKING = False  # see warm.protocol
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType
    from typing import Any

__all__ = ["run_served"]

EXIT_CANNOT_START = 125  # errors.EXIT_CANNOT_START; sandpool.errors is one import more
FORWARDED = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)  # as run_cmd.STOP_SIGNALS


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:  # no socket file, or a stale one nobody listens on
        sock.close()
        return None
    return sock


def _send_request(sock: socket.socket, run: dict[str, object],
                  environ: Mapping[str, str]) -> bool:  # fmt: skip
    env = {k: v for k, v in environ.items() if k.startswith("SANDPOOL_")}
    config = run.pop("config", [])
    message = encode({"run": run, "config": config, "cwd": os.getcwd(), "env": env})
    if len(message) >= MAX_MESSAGE:  # a message of MAX_MESSAGE may have been cut
        return False
    try:
        # One message must fit the send buffer (net.core.wmem_default, 208 KiB by default):
        # ask for MAX_MESSAGE; the kernel caps it at net.core.wmem_max (x2), and a message
        # still too large fails with EMSGSIZE below (the run then goes in-process).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
        socket.send_fds(sock, [message], [0, 1, 2])
    except OSError:  # a closed std fd, or a message over the socket's limit
        return False
    return True


def _forward_signals(sock: socket.socket) -> list[Any]:
    """SIGINT/SIGHUP/SIGTERM go to the server, which stops the container and answers with
    128 + the signal (130/129/143); the handlers they replace are returned."""

    def forward(signum: int, frame: FrameType | None) -> None:
        try:  # noqa: SIM105 - contextlib is one more import for every served run
            sock.send(encode({"signal": signum}))
        except OSError:
            pass

    return [signal.signal(signum, forward) for signum in FORWARDED]


def _await_exit(sock: socket.socket) -> int:
    data = sock.recv(MAX_MESSAGE)
    if not data:
        write_all(2, b"sandpool: `sandpool serve` went away during the run\n")
        return EXIT_CANNOT_START
    try:
        return parse_exit(data)
    except BadMessage as bad:
        write_all(2, f"sandpool: `sandpool serve` answered a bad message: {bad}\n".encode())
        return EXIT_CANNOT_START


def run_served(args: list[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run ``sandpool run ARGS`` in a warm server: its exit status, or None if none took it."""
    environ = os.environ if environ is None else environ
    path = socket_path(environ)
    run = parse_argv(args) if path is not None else None
    if path is None or run is None:
        return None
    sock = _connect(path)
    if sock is None:
        return None
    with sock:
        if not _send_request(sock, run, environ):
            return None
        previous = _forward_signals(sock)
        try:
            return _await_exit(sock)
        finally:
            for signum, handler in zip(FORWARDED, previous, strict=True):
                signal.signal(signum, handler)
