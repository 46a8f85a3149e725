"""``sandpool server``'s serve socket (``service.daemon``): bound before the rest starts,
refused when another daemon holds it, removed however the server ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.errors import ServeError
from sandpool.service.daemon import SocketSide
from sandpool.warm.protocol import server_listens


def test_a_bound_socket_that_never_served_is_removed_by_join(tmp_path: Path) -> None:
    """The server failed after binding (its database, say): nothing is left behind."""
    path = tmp_path / "serve.sock"
    side = SocketSide(str(path), grace=1.0, keep_sandboxes=False, environ={})
    side.bind()
    assert server_listens(str(path))
    side.join()
    assert not path.exists()
    side.join()  # twice is harmless (the CLI's finally after a clean stop)


def test_a_live_socket_is_refused_naming_the_ways_out(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    first = SocketSide(str(path), grace=0.0, keep_sandboxes=False, environ={})
    first.bind()
    try:
        second = SocketSide(str(path), grace=0.0, keep_sandboxes=False, environ={})
        with pytest.raises(ServeError) as refused:
            second.bind()
        assert "already listens on" in str(refused.value)
        assert "--no-socket" in (refused.value.hint or "")
    finally:
        first.join()
    assert not path.exists()
