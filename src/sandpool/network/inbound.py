"""Inbound: one TCP port of a networked container, reachable on the host (``expose_port``).

A ``PortForward`` listens on a host address (loopback by default) on a port the kernel picks,
and pipes each connection to the container's address and port through its veth. The host
opens those connections itself (its OUTPUT path, not FORWARD), so the container's egress
policy does not apply to them; their sockets carry ``INBOUND_MARK``, without which the
container's table refuses any new connection from the host into its veth (no other host
process reaches it), and the container still cannot open anything towards the host: its
table accepts from the veth only replies (``ct state established,related``). Threads of the
owning process; ``close`` ends them all.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from sandpool.errors import NetworkSetupFailed
from sandpool.network.settings import INBOUND_MARK

__all__ = ["PortForward"]

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
_CHUNK = 1 << 16


class PortForward:
    """Connections to ``(bind, host_port)`` piped to ``target`` until ``close``."""

    def __init__(self, target: tuple[str, int], bind: str = "127.0.0.1") -> None:
        self.target = target
        try:
            self.sock = socket.create_server((bind, 0))
        except OSError as exc:
            raise NetworkSetupFailed(f"cannot listen on {bind} for port {target[1]}: {exc}",
                                     hint="check worker.network settings") from exc  # fmt: skip
        self.host, self.port = self.sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"port-{target[0]}:{target[1]}")  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        """Stop listening and cut every open connection."""
        with self._lock:
            self._closed = True
            sockets, self._open = list(self._open), set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self.sock.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = _connect_marked(self.target)
        except OSError as exc:
            log.info("port %s:%d: %s", *self.target, exc)
            client.close()
            return
        upstream.settimeout(None)
        pair = {client, upstream}
        with self._lock:
            if self._closed:
                pair.clear()
            self._open |= pair
        if not pair:
            client.close()
            upstream.close()
            return
        running = [2]  # the two directions; the last to end closes both sockets
        threading.Thread(target=self._pipe, args=(upstream, client, pair, running),
                         daemon=True).start()  # fmt: skip
        self._pipe(client, upstream, pair, running)

    def _pipe(self, source: socket.socket, sink: socket.socket, pair: set[socket.socket],
              running: list[int]) -> None:  # fmt: skip
        """Copy until EOF and pass the EOF on (half-close), then let go of the pair."""
        with contextlib.suppress(OSError):
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with self._lock:
            running[0] -= 1
            last = running[0] == 0
            if last:
                self._open -= pair
        if last:
            for sock in pair:
                sock.close()


def _connect_marked(target: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, INBOUND_MARK)
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock
