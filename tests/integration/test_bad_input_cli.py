"""Bad flags and bad configurations given to a real ``sandpool run``, in-process and served:
one line naming the flag or key, exit 125, no traceback, nothing left behind, and the
allowed ``gvisorExtraArgs`` really harmless (issue 13 items 2-4 and 9, issue 12 item 7)."""

# ruff: noqa: F811  (tests take the imported `cli` fixture as an argument of the same name)

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tests.integration.test_run_cli import Cli, cli  # noqa: F401  (the fixture, both modes)

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]


def refused(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 125, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--cpu", "nan"), ("--cpu", "inf"), ("--cpu", "-inf"), ("--timeout", "nan"),
     ("--timeout", "inf"), ("--memory", "inf"), ("--memory", "-5Mi"), ("--pids", "1" + "0" * 30),
     ("--gpu", "1" + "0" * 30)],
)  # fmt: skip
def test_numbers_that_are_not_numbers_are_refused(
    cli: Cli, no_leaks: Sandbox, flag: str, value: str
) -> None:
    done = cli.run("run", "--pool", "performance", flag, value, "--", "echo", "hi")
    refused(done, f"Invalid value for '{flag}': expected ")
    assert done.stdout == ""


@pytest.mark.parametrize("pool", ["performance", "default"])
def test_timeout_nan_is_no_false_timeout(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    """It was a 124 (timed out) for an echo that finished in 77 ms."""
    done = cli.run("run", "--pool", pool, "--timeout", "nan", "--", "echo", "hi")
    refused(done, "Invalid value for '--timeout'")


def pool_config(sandbox: Sandbox, tmp_path: Path, extra: str) -> str:
    """The session's configuration with ``extra`` lines added to the gVisor pool."""
    text = sandbox.config_file.read_text() + extra
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


def test_a_bad_memory_value_is_named_with_its_line(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    path = pool_config(cli.sandbox, tmp_path, "      containerDefaults:\n        memory: abc\n")
    for pool in ("default", "performance"):  # the bad value is in `default`: both refuse
        done = cli.run("run", "-c", path, "--pool", pool, "--", "true")
        refused(done, "worker.pools.default.containerDefaults.memory: expected a size", "line 12")
    var = "SANDPOOL_WORKER_POOLS_PERFORMANCE_CONTAINERDEFAULTS_MEMORY"
    cli.env[var] = "-5Mi"
    try:
        done = cli.run("run", "--pool", "performance", "--", "true")
    finally:
        del cli.env[var]
    refused(done, "containerDefaults.memory: expected a size", f"environment variable {var}")


def test_a_relative_state_dir_is_refused_and_creates_nothing(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    cli.env["SANDPOOL_WORKER_STATEDIR"] = "relative/dir"
    try:
        done = cli.run("run", "--pool", "performance", "--", "true", cwd=tmp_path)
    finally:
        del cli.env["SANDPOOL_WORKER_STATEDIR"]
    refused(done, "worker.stateDir: expected an absolute path", "SANDPOOL_WORKER_STATEDIR")
    assert list(tmp_path.iterdir()) == []


def test_gvisor_extra_args_that_undo_sandpool_flags_are_refused(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    """``--network=host`` used to win over sandpool's ``--network=none``."""
    extra = "        gvisorExtraArgs: [--network=host, --ignore-cgroups]\n"
    done = cli.run("run", "-c", pool_config(cli.sandbox, tmp_path, extra), "--pool", "default",
                   "--", "cat", "/proc/net/dev")  # fmt: skip
    refused(done, "worker.pools.default.containerRuntimeConfig.gvisorExtraArgs: item 0: "
                  "sandpool sets --network itself", "allowed flags: --debug")  # fmt: skip
    assert done.stdout == ""


def test_allowed_gvisor_extra_args_change_nothing_the_container_sees(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    """Debug and strace output goes to no log: not to the container's stderr either."""
    extra = "        gvisorExtraArgs: [--debug, --strace, --log-format=json]\n"
    done = cli.run("run", "-c", pool_config(cli.sandbox, tmp_path, extra), "--pool", "default",
                   "--", "sh", "-c", "echo out; echo err >&2")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")


def test_a_fifo_or_device_config_is_refused_without_waiting(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    """Served, the server opens the client's files: it must neither block nor grow."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        started = time.monotonic()
        done = cli.run("run", "-c", path, "--", "true", timeout=60)
        refused(done, "is not a regular file")
        assert time.monotonic() - started < 30
    assert cli.run("run", "--pool", "performance", "--", "true").returncode == 0
