"""The warm-run protocol between ``sandpool run`` (client) and ``sandpool serve`` (server).

One ``SOCK_SEQPACKET`` unix socket, one connection per run, JSON messages:

- client -> server, first: ``{"argv": [...], "cwd": "...", "env": {...}}`` (the arguments
  after ``run``, the client's directory and its ``SANDPOOL_*`` variables), carrying the
  client's fds 0, 1 and 2 (``SCM_RIGHTS``): the container writes straight to them. An fd
  the client does not send is ``/dev/null`` for the run.
- client -> server: ``{"signal": N}`` when SIGINT (2) or SIGTERM (15) reached the client:
  stop the run (its status is then 128 + N).
- server -> client, last: ``{"exit": N}``, the exit status ``sandpool run`` exits with (0-255).
- EOF from the client (it died): the server stops the container and cleans up.

Every message is checked field by field (``warm.messages``): a bad one, first or later, is
answered with exit status 125 and one line on the client's stderr, and a run it arrives
during is stopped.

Only the socket's owner may connect (mode 0600 in a 0700 directory, and the server checks
the peer's uid). Standard library only: the client imports this and nothing heavier.
"""

from __future__ import annotations

import json
import os
import socket

from sandpool.hostdirs import runtime_dir

TYPE_CHECKING = False  # typing's own costs an import the thin client does without
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SOCKET_ENV", "decode", "encode", "peer_uid", "server_listens", "socket_path"]

SOCKET_ENV = "SANDPOOL_SOCKET"
SOCKET_NAME = "serve.sock"
MAX_MESSAGE = 1 << 20


def socket_path(environ: Mapping[str, str]) -> str | None:
    """``$SANDPOOL_SOCKET``, else ``serve.sock`` in sandpool's runtime directory."""
    if environ.get(SOCKET_ENV):
        return environ[SOCKET_ENV]
    base = runtime_dir(environ)
    return os.path.join(base, SOCKET_NAME) if base else None


def encode(message: Mapping[str, object]) -> bytes:
    """One message on the wire."""
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, object]:
    """One message off the wire (ValueError if it is not a JSON object)."""
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of ``conn`` (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], "little")


def server_listens(path: str) -> bool:
    """Whether a ``sandpool serve`` accepts connections on ``path`` (a stale file: False)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True
