"""``sandpool serve``'s socket: where it listens, who else may, what it leaves."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from sandpool.errors import ServeError
from sandpool.warm.protocol import server_listens
from sandpool.warm.server import WarmServer


def test_serve_refuses_a_bad_path_and_a_live_socket(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ServeError, match=f"cannot listen on {blocker}/s.sock"):
        WarmServer(str(blocker / "s.sock")).bind()
    first = WarmServer(str(tmp_path / "run" / "s.sock"))
    first.bind()
    assert oct((tmp_path / "run" / "s.sock").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"
    with pytest.raises(ServeError, match="another `sandpool serve` already listens on"):
        WarmServer(str(tmp_path / "run" / "s.sock")).bind()
    first.stop()
    first.serve()  # returns at once: stopping, it removes its socket
    assert not (tmp_path / "run" / "s.sock").exists()


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_serve_never_replaces_what_is_not_a_socket(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "serve.sock"
    if kind == "file":
        path.write_text("precious\n")
    elif kind == "directory":
        path.mkdir()
    else:
        (tmp_path / "target").write_text("precious\n")
        path.symlink_to(tmp_path / "target")
    with pytest.raises(ServeError, match=f"{path} exists and is not a socket"):
        WarmServer(str(path)).bind()
    assert path.is_dir() if kind == "directory" else path.read_text() == "precious\n"
    assert path.is_symlink() == (kind == "symlink")


def test_serve_replaces_a_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as stale:
        stale.bind(str(path))  # closed without listening: nobody answers there
    server = WarmServer(str(path))
    server.bind()
    assert server_listens(str(path))
    server.stop()
    server.serve()


def test_its_own_socket_directory_is_made_private_even_if_it_existed(tmp_path: Path) -> None:
    """/run/sandpool may exist already, 0755 (the config cache creates it as a parent)."""
    own, other = tmp_path / "own", tmp_path / "other"
    for directory in (own, other):
        directory.mkdir()
        directory.chmod(0o755)
    servers = [WarmServer(str(own / "s.sock"), own_dir=True), WarmServer(str(other / "s.sock"))]
    for server in servers:
        server.bind()
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert stat.S_IMODE(other.stat().st_mode) == 0o755  # a directory the user chose keeps its mode
    old_umask = os.umask(0)
    try:
        fresh = WarmServer(str(tmp_path / "new" / "dir" / "s.sock"))
        fresh.bind()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new" / "dir").stat().st_mode) == 0o700
    for server in (*servers, fresh):
        server.stop()
        server.serve()
