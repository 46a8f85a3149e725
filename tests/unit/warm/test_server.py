"""``sandpool serve``'s socket: where it listens, who else may, what it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.errors import ServeError
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
