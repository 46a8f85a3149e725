"""`sandpool run` end to end, as a user runs it: a real process, real runtimes, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]
SANDPOOL = str(Path(sys.executable).parent / "sandpool")


def sandpool(sandbox: Sandbox, *args: str, stdin: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file)}
    return subprocess.run([SANDPOOL, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)  # fmt: skip


def popen(sandbox: Sandbox, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file)}
    return subprocess.Popen([SANDPOOL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env)  # fmt: skip


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--", "sh", "-c", "exit 3"], 3),
        (["--", "true"], 0),
        (["--timeout", "1", "--", "sleep", "20"], 124),
        (["--", "no-such-command"], 127),
        (["--", "/etc/passwd"], 126),
        (["--memory", "30Mi", "--", "sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=60"],
         137),
        (["--memory", "lots", "--", "true"], 125),
        (["--bogus-flag", "--", "true"], 125),
        (["--image", "oci-archive:/nonexistent.tar", "--", "true"], 125),
    ],
)  # fmt: skip
def test_exit_codes(sandbox: Sandbox, no_leaks: Sandbox, pool: str, args: list[str],
                    code: int) -> None:  # fmt: skip
    done = sandpool(sandbox, "run", "--pool", pool, "--image", "builtin:busybox", *args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if args[0] == "--memory" and code == 125:
        assert "Invalid value for '--memory'" in done.stderr


def test_unknown_pool_and_missing_runtime_exit_125(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path
) -> None:
    unknown = sandpool(sandbox, "run", "--pool", "nope", "--", "true")
    assert unknown.returncode == 125 and "unknown pool 'nope'" in unknown.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(sandbox.config_file.read_text().replace(
        "  cgroupParent:", "  runscPath: /nope/runsc\n  cgroupParent:"))  # fmt: skip
    done = subprocess.run([SANDPOOL, "run", "-c", str(bad), "--", "true"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 125
    assert "failed to create gvisor runtime: runsc not found at /nope/runsc" in done.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_json_summary(sandbox: Sandbox, no_leaks: Sandbox, pool: str) -> None:
    done = sandpool(sandbox, "run", "--pool", pool, "--json", "--image", "builtin:busybox",
                    "--", "sh", "-c", "echo hello; exit 7")  # fmt: skip
    out, summary = done.stdout.rsplit("\n", 2)[0], json.loads(done.stdout.splitlines()[-1])
    assert out == "hello" and done.returncode == 7
    assert summary["exitCode"] == 7 and summary["pool"] == pool
    assert summary["containerRuntime"] == ("runc" if pool == "performance" else "gvisor")
    assert summary["gvisorPlatform"] == (None if pool == "performance" else "ptrace")
    assert summary["oomKilled"] is False and summary["timedOut"] is False
    assert summary["image"] == "builtin:busybox"
    assert 0 < summary["startLatencyMs"] <= summary["durationMs"]
    for key in ("id", "startedAt", "finishedAt"):
        assert summary[key]


@pytest.mark.parametrize("pool", POOLS)
def test_stdin_env_workdir(sandbox: Sandbox, no_leaks: Sandbox, pool: str) -> None:
    piped = sandpool(sandbox, "run", "--pool", pool, "--", "cat", stdin="hi\n")
    assert (piped.returncode, piped.stdout) == (0, "hi\n")
    done = sandpool(sandbox, "run", "--pool", pool, "--env", "A=1", "--env", "B=two words",
                    "--workdir", "/tmp", "--", "sh", "-c", 'echo "$A $B"; pwd')  # fmt: skip
    assert done.stdout == "1 two words\n/tmp\n"


@pytest.mark.parametrize("pool", POOLS)
def test_default_image_has_python3(sandbox: Sandbox, no_leaks: Sandbox, pool: str) -> None:
    done = sandpool(sandbox, "run", "--pool", pool, "--", "python3", "-c", "print(6 * 7)")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_output_streams_before_the_command_ends(
    sandbox: Sandbox, no_leaks: Sandbox, pool: str
) -> None:
    proc = popen(sandbox, "run", "--pool", pool, "--", "sh", "-c",
                 "echo first; echo e1 >&2; sleep 3; echo second")  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_at = time.monotonic()
    rest, err = proc.communicate(timeout=60)
    ended_at = time.monotonic()
    assert first == "first\n" and rest == "second\n" and err == "e1\n"
    assert ended_at - first_at > 2, "the first line only arrived at the end"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("pool", POOLS)
def test_signal_stops_container_and_cleans_up(
    sandbox: Sandbox, no_leaks: Sandbox, pool: str, sig: signal.Signals, code: int
) -> None:
    proc = popen(sandbox, "run", "--pool", pool, "--", "sh", "-c", "echo up; sleep 60")
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == code


@pytest.mark.parametrize("pool", POOLS)
def test_sigkilled_cli_then_gc_leaves_nothing(
    sandbox: Sandbox, no_leaks: Sandbox, pool: str
) -> None:
    proc = popen(sandbox, "run", "--pool", pool, "--", "sh", "-c", "echo up; sleep 60")
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    listed = sandpool(sandbox, "ps", "--json")
    assert [row["pool"] for row in json.loads(listed.stdout)] == [pool]
    proc.kill()
    proc.wait(timeout=30)  # its container still holds the pipes: don't wait for EOF
    assert sandbox.leftovers(), "the SIGKILLed run should have left its container"
    gc = sandpool(sandbox, "gc")
    assert gc.returncode == 0 and "1 container(s) removed" in gc.stdout
    assert json.loads(sandpool(sandbox, "ps", "--json").stdout) == []
    proc.communicate(timeout=30)  # gc killed the container: the pipes close


def test_kill_command_stops_a_running_container(sandbox: Sandbox, no_leaks: Sandbox) -> None:
    proc = popen(sandbox, "run", "--pool", "performance", "--", "sh", "-c", "echo up; sleep 60")
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    [row] = json.loads(sandpool(sandbox, "ps", "--json").stdout)
    killed = sandpool(sandbox, "kill", row["id"])
    assert killed.returncode == 0
    proc.communicate(timeout=30)
    assert proc.returncode == 137
    missing = sandpool(sandbox, "kill", "sp-doesnotexist")
    assert missing.returncode != 0 and "no sandpool container" in missing.stderr


@pytest.mark.parametrize(("pool", "count"), [("performance", 50), ("default", 12)])
def test_concurrent_runs_through_the_api(
    sp: Sandpool, no_leaks: Sandbox, pool: str, count: int
) -> None:
    def one(i: int) -> tuple[int, bytes | None]:
        result = sp.run(pool, ["sh", "-c", f"echo {i}"], image="builtin:busybox")
        return result.exit_code, result.stdout

    with ThreadPoolExecutor(max_workers=16) as executor:
        results = list(executor.map(one, range(count)))
    assert results == [(0, f"{i}\n".encode()) for i in range(count)]


@pytest.mark.parametrize("pool", POOLS)
def test_output_into_a_shared_regular_file_keeps_its_place(
    sandbox: Sandbox, no_leaks: Sandbox, pool: str, tmp_path: Path
) -> None:
    """gVisor writes a host file at its own offset; sandpool must append where the caller is.

    Each stream gets its own file: runc copies stdout and stderr in separate goroutines, so
    their order relative to each other is not defined (for raw runc either)."""
    env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file)}
    logs = [tmp_path / "out.log", tmp_path / "err.log"]
    with logs[0].open("wb") as out, logs[1].open("wb") as err:
        for f in (out, err):
            f.write(b"before\n")
            f.flush()
        subprocess.run([SANDPOOL, "run", "--pool", pool, "--", "sh", "-c",
                        "echo out; echo err >&2"], stdout=out, stderr=err, env=env,
                       check=True, timeout=120)  # fmt: skip
        for f in (out, err):
            f.write(b"after\n")
    assert logs[0].read_bytes() == b"before\nout\nafter\n"
    assert logs[1].read_bytes() == b"before\nerr\nafter\n"
