"""The default image (busybox sh + Debian python3.11) and the images CLI end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sandpool.cli.main import cli
from sandpool.images import DEFAULT_IMAGE, ImageStore
from sandpool.images.default_image import PYTHON


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state dir the CLI uses through the environment."""
    monkeypatch.setenv("SANDPOOL_WORKER_STATEDIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["images", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.skipif(not PYTHON.exists(), reason=f"needs Debian's {PYTHON} (./setup.sh)")
def test_default_image_runs_sh_and_python3(state: Path) -> None:
    out = _invoke("build-default").output
    assert out.startswith(f"default image {DEFAULT_IMAGE}")
    image = ImageStore(state).get(DEFAULT_IMAGE)
    assert image.size_bytes < 80_000_000
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in image.env
    script = "import json, ssl, sqlite3, hashlib; print(json.dumps({'ok': 6 * 7}))"
    result = subprocess.run(
        ["chroot", str(image.rootfs), "/bin/sh", "-c", f'echo from sh; python3 -c "{script}"'],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'from sh\n{"ok": 42}\n'
    assert _invoke("build-default").output == out  # cached: same digest, not rebuilt


def test_cli_ls_rm_prune(state: Path, factory: Any) -> None:
    layout = factory.layout("cli", {}, "--config.cmd=/bin/true")
    reference = f"oci:{layout}:v1"
    pulled = _invoke("pull", reference).output
    assert pulled.startswith(reference)
    listed = json.loads(_invoke("ls", "--json").output)
    assert [(i["reference"], i["cmd"]) for i in listed] == [(reference, ["/bin/true"])]
    assert listed[0]["digest"] in pulled
    assert reference in _invoke("ls").output
    _invoke("rm", reference)
    assert _invoke("ls", "-q").output == ""
    _invoke("pull", reference)
    assert "1 image(s) deleted" in _invoke("prune", "--all").output
    assert not Path(listed[0]["rootfs"]).exists()
