"""Images made here, run with ``sandpool run`` on both container runtimes (runc and gVisor)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SANDPOOL = Path(sys.executable).parent / "sandpool"
POOLS = {"performance": "runc", "default": "runsc"}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sandpool.cli.run_cmd") is None, reason="no `sandpool run` yet"
)


def _run(state: Path, pool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(POOLS[pool]) is None:
        pytest.skip(f"needs {POOLS[pool]}")
    env = {
        **os.environ,
        "SANDPOOL_WORKER_STATEDIR": str(state),
        "SANDPOOL_SOCKET": str(state / "no-server.sock"),
    }  # in-process, never a host server
    env.pop("SANDPOOL_CONFIG", None)  # the embedded default: pools performance and default
    argv = [str(SANDPOOL), "run", "--json", "--pool", pool, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(report, dict)
    return report


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_archive_image_runs_with_its_config(tmp_path: Path, factory: Any, pool: str) -> None:
    layout = factory.layout(
        "run", {"srv/data.txt": "from the image\n"}, "--config.env=GREETING=hi",
        "--config.workingdir=/srv", "--config.cmd=sh", "--config.cmd=-c",
        "--config.cmd=echo $GREETING; cat data.txt",
    )  # fmt: skip
    archive = factory.archive(layout, "v1", "oci-archive")
    result = _run(tmp_path / "state", pool, "--image", f"oci-archive:{archive}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hi\nfrom the image\n"), result.stdout
    assert _report(result)["exitCode"] == 0
    given = _run(tmp_path / "state", pool, "--image", f"oci-archive:{archive}", "--", "pwd")
    assert given.stdout.startswith("/srv\n"), given.stdout


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_bad_image_exits_125_naming_it(tmp_path: Path, pool: str) -> None:
    result = _run(
        tmp_path / "state", pool, "--image", f"oci-archive:{tmp_path}/none.tar", "--", "true"
    )
    assert result.returncode == 125
    assert f"oci-archive:{tmp_path}/none.tar" in result.stderr
