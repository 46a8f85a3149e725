"""``sandpool worker --pool P``: config from the Job's env, the runtime check, probes, SIGTERM.

Runs the real command in a subprocess with stand-in runtime binaries (shell scripts), so it
needs no runc/runsc, no root and no cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sandpool.cli.worker_cmd import check_pool_runtime, worker_config
from sandpool.config import LoadedConfig
from sandpool.config.resolved import ResolvedConfig
from sandpool.controller.worker_env import RESOLVED_CONFIG_ENV, encode_resolved_config

POOLS = """
worker:
  pools:
    secure: {containerRuntime: gvisor}
    fast: {containerRuntime: runc}
"""


def stub(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def config(tmp_path: Path, runsc: str, runc: str = "runc") -> ResolvedConfig:
    path = tmp_path / "pools.yaml"
    path.write_text(
        POOLS.replace("worker:\n", f"worker:\n  runscPath: {runsc}\n  runcPath: {runc}\n")
    )
    return LoadedConfig.load([str(path)], {}).resolved


def test_check_finds_the_binary_and_its_version(tmp_path: Path) -> None:
    resolved = config(tmp_path, stub(tmp_path, "runsc", "echo 'runsc version release-20240101.0'"))
    check = check_pool_runtime(resolved.pool("secure"), resolved)
    assert check.ok
    assert check.version == "runsc version release-20240101.0"
    assert check.container_runtime == "gvisor"


def test_check_reports_a_missing_binary_as_the_spec_says(tmp_path: Path) -> None:
    resolved = config(tmp_path, str(tmp_path / "no-runsc"))
    check = check_pool_runtime(resolved.pool("secure"), resolved)
    assert not check.ok
    assert check.error is not None
    assert check.error.startswith("failed to create gvisor runtime: runsc not found")


def test_check_reports_a_failing_version(tmp_path: Path) -> None:
    runc = stub(tmp_path, "runc", "echo broken >&2; exit 3")
    resolved = config(tmp_path, "runsc", runc=runc)
    check = check_pool_runtime(resolved.pool("fast"), resolved)
    assert not check.ok
    assert check.error == f"{runc} --version exited 3: broken"


def test_config_from_the_jobs_env_beats_files(tmp_path: Path) -> None:
    resolved = config(tmp_path, "/opt/runsc")
    environ = {RESOLVED_CONFIG_ENV: encode_resolved_config(resolved, "secure")}
    from_env, source = worker_config((), environ)
    assert from_env.pool("secure") == resolved.pool("secure")
    assert source == "the worker Job's environment"
    embedded, source = worker_config((), {})
    assert "default" in embedded.pools
    assert source == "<embedded default>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start_worker(tmp_path: Path, runsc: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
    env[RESOLVED_CONFIG_ENV] = encode_resolved_config(config(tmp_path, runsc), "secure")
    argv = [
        sys.executable,
        "-c",
        "from sandpool.cli.main import main; main()",
        "worker",
        "--pool",
        "secure",
        "--health-host",
        "127.0.0.1",
        "--health-port",
        str(port),
    ]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            get(base + "/healthz")
            return proc, base
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
    proc.kill()
    pytest.fail("the worker never answered its liveness probe")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    return proc.returncode, stderr


def test_worker_answers_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, base = start_worker(tmp_path, stub(tmp_path, "runsc", "echo 'runsc version test'"))
    try:
        assert get(base + "/healthz") == (200, {"status": "ok", "pool": "secure"})
        status, body = get(base + "/readyz")
        assert status == 200
        assert body["ready"] is True
    finally:
        code, stderr = stop(proc)
    assert code == 0
    assert "configuration from the worker Job's environment" in stderr
    assert "runtime check: pool=secure containerRuntime=gvisor ok" in stderr
    assert "SIGTERM received: stopping" in stderr


def test_worker_without_its_runtime_is_alive_but_not_ready(tmp_path: Path) -> None:
    proc, base = start_worker(tmp_path, str(tmp_path / "missing-runsc"))
    try:
        assert get(base + "/healthz")[0] == 200
        status, body = get(base + "/readyz")
        assert status == 503
        assert body["ready"] is False
    finally:
        code, stderr = stop(proc)
    assert code == 0
    assert "FAILED: failed to create gvisor runtime: runsc not found" in stderr
