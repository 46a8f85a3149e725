"""The thin client's decisions: where the socket is, when it runs in-process instead."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sandpool.warm import client
from sandpool.warm.protocol import decode, encode, peer_uid, socket_path


def test_socket_path_prefers_the_env_then_the_runtime_dir() -> None:
    assert socket_path({"SANDPOOL_SOCKET": "/x/s.sock"}) == "/x/s.sock"
    if os.geteuid() == 0:
        assert socket_path({}) == "/run/sandpool/serve.sock"
    else:
        assert socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == "/run/user/7/sandpool/serve.sock"
        assert socket_path({}) is None


def test_no_server_means_none(tmp_path: Path) -> None:
    missing = {"SANDPOOL_SOCKET": str(tmp_path / "nope.sock")}
    assert client.run_served(["--", "true"], missing) is None
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as bound:
        bound.bind(str(stale))  # bound, never listening: like a crashed server's file
        assert client.run_served(["--", "true"], {"SANDPOOL_SOCKET": str(stale)}) is None


def test_a_listening_server_gets_the_request_and_its_exit_status_is_final(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(path))
        listener.listen(1)
        pid = os.fork()
        if pid == 0:  # the "server": check the request, answer 7
            conn, _ = listener.accept()
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            request = decode(data)
            ok = request["run"] == {"pool": "p", "command": ["true"]} and len(fds) == 3
            ok = ok and request["config"] == ["c.yaml"] and request["cwd"] == os.getcwd()
            ok = ok and request["env"] == {"SANDPOOL_SOCKET": str(path), "SANDPOOL_CONFIG": "/c"}
            ok = ok and peer_uid(conn) == os.geteuid()
            conn.send(encode({"exit": 7 if ok else 1}))
            os._exit(0)
        env = {"SANDPOOL_SOCKET": str(path), "SANDPOOL_CONFIG": "/c", "HOME": "/x"}
        assert client.run_served(["--pool", "p", "-c", "c.yaml", "--", "true"], env) == 7
        os.waitpid(pid, 0)


def _wmem_max() -> int:
    return int(Path("/proc/sys/net/core/wmem_max").read_text())


@pytest.mark.skipif(_wmem_max() < 1 << 19, reason="net.core.wmem_max caps the send buffer")
def test_a_request_far_over_the_default_socket_buffer_is_still_served(tmp_path: Path) -> None:
    """A SOCK_SEQPACKET message must fit the sender's buffer: 212992 bytes by default (the
    old limit, whatever MAX_MESSAGE said); the client raises it towards MAX_MESSAGE."""
    path = tmp_path / "s.sock"
    big = "x" * 600_000
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(path))
        listener.listen(1)
        pid = os.fork()
        if pid == 0:  # the "server"; it never returns into pytest, whatever happens
            try:
                conn, _ = listener.accept()
                data, _, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                command = decode(data)["run"]["command"]  # type: ignore[index]
                conn.send(encode({"exit": 7 if command == ["echo", big] else 1}))
            finally:
                os._exit(0)
        assert client.run_served(["--", "echo", big], {"SANDPOOL_SOCKET": str(path)}) == 7
        os.waitpid(pid, 0)
