"""``network.inbound.PortForward`` on loopback (no container): bytes both ways, a half-close
passed on, several connections at once, and ``close`` cutting them all. Its sockets carry
SO_MARK, which needs CAP_NET_ADMIN: root only."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from sandpool.network.inbound import PortForward

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SO_MARK needs CAP_NET_ADMIN")


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A loopback server that echoes until EOF, then closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[:2]
    server.close()


def _round_trip(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)  # the echo server ends only on EOF: passed on
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_bytes_both_ways_half_close_and_close(echo: tuple[str, int]) -> None:
    forward = PortForward(echo)
    try:
        assert forward.host == "127.0.0.1" and forward.port != echo[1]
        big = os.urandom(300_000)
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.append(
            _round_trip((forward.host, forward.port), big))) for _ in range(4)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [big] * 4
        idle = socket.create_connection((forward.host, forward.port), timeout=5)
    finally:
        forward.close()
    idle.settimeout(5)
    with contextlib.suppress(ConnectionResetError):  # cut by close: a reset, or EOF
        assert idle.recv(10) == b""
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((forward.host, forward.port), timeout=5)


def test_a_closed_target_closes_the_client(echo: tuple[str, int]) -> None:
    unused = socket.create_server(("127.0.0.1", 0))
    address = unused.getsockname()[:2]
    unused.close()  # nothing listens there now
    forward = PortForward(address)
    try:
        with socket.create_connection((forward.host, forward.port), timeout=5) as conn:
            assert conn.recv(10) == b""
    finally:
        forward.close()
