"""``sandpool sandbox`` without a running server: one line, 125, nothing attempted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sandpool.cli.main import cli


@pytest.mark.parametrize("args", [["create"], ["ls"], ["exec", "sp-1", "true"], ["rm", "sp-1"],
                                  ["cp", "f", "sp-1:/f"]])  # fmt: skip
def test_without_a_server(tmp_path: Path, args: list[str]) -> None:
    env = {"SANDPOOL_SOCKET": str(tmp_path / "nobody.sock")}
    result = CliRunner().invoke(cli, ["sandbox", *args], env=env)
    assert result.exit_code == 125, result.output
    assert "needs a running `sandpool serve`" in result.output
    assert "Traceback" not in result.output


def test_cp_needs_exactly_one_sandbox_side(tmp_path: Path) -> None:
    env = {"SANDPOOL_SOCKET": str(tmp_path / "nobody.sock")}
    result = CliRunner().invoke(cli, ["sandbox", "cp", "a", "b"], env=env)
    assert result.exit_code == 2
    assert "exactly one of SOURCE and DESTINATION must be ID:PATH" in result.output
