"""Bad flags and variables of the gateway and worker modes: one line naming the thing, exit 2,
no traceback (no Redis, no runtime needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandpool.dispatch.models import Resources, WorkerSpec
from sandpool.dispatch.setup import settings_from_env
from sandpool.errors import ConfigError

SANDPOOL = str(Path(sys.executable).parent / "sandpool")
TOKEN = "0123456789abcdef0123"


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SANDPOOL, *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip


def test_settings_come_from_the_environment_and_bad_ones_are_named() -> None:
    got = settings_from_env({"SANDPOOL_DISPATCH_LEASE": "2.5",
                             "SANDPOOL_DISPATCH_MAX_BACKLOG": "7"})  # fmt: skip
    assert (got.lease, got.max_backlog) == (2.5, 7)
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match="SANDPOOL_DISPATCH_LEASE must be a positive"):
            settings_from_env({"SANDPOOL_DISPATCH_LEASE": bad})


def test_worker_without_its_token_says_so(tmp_path: Path) -> None:
    done = run("worker", "--pool", "default", "--gateway", "http://127.0.0.1:9",
               env={"SANDPOOL_WORKER_TOKEN": "short"})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("ConfigError: SANDPOOL_WORKER_TOKEN")
    assert "Traceback" not in done.stderr


def test_worker_with_a_gateway_that_is_no_url(tmp_path: Path) -> None:
    done = run("worker", "--pool", "default", "--gateway", "127.0.0.1:9",
               env={"SANDPOOL_WORKER_TOKEN": TOKEN})  # fmt: skip
    assert done.returncode == 2 and "--gateway" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("url", "token", "says"), [
    ("http://x", TOKEN, "--redis must be a redis://"),
    ("redis://127.0.0.1:1/0", "", "SANDPOOL_WORKER_TOKEN must hold"),
    ("redis://127.0.0.1:1/0", TOKEN, "Redis at redis://127.0.0.1:1/0"),
])  # fmt: skip
def test_gateway_bad_redis_or_token(tmp_path: Path, url: str, token: str, says: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"worker:\n  stateDir: {tmp_path / 'state'}\n")
    done = run("server", "--listen", "127.0.0.1:0", "--redis", url, "--no-socket",
               "-c", str(config),
               env={"SANDPOOL_WORKER_TOKEN": token, "SANDPOOL_ADMIN_KEY": "k" * 40})  # fmt: skip
    assert done.returncode in (2, 125), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_worker_spec_must_name_a_pool_and_an_http_address() -> None:
    spec = WorkerSpec("p", "http://127.0.0.1:1", Resources(1000, 1, 0, 1))
    assert WorkerSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="address"):
        WorkerSpec.from_json({**spec.to_json(), "address": "file:///x"})
    with pytest.raises(ValueError, match="cpu"):
        Resources.from_json({"cpu": -1})
