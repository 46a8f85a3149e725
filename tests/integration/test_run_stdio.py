"""`sandpool run` with closed or broken stdio, and where its own lines go (issue 13.6, 13.7).

Every test runs in-process and served (the ``cli`` fixture of test_run_cli), on runc and gVisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tests.integration.test_run_cli import POOLS, SANDPOOL, Cli
from tests.integration.test_run_cli import cli as cli  # the fixture, in both modes

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]


def shell(cli: Cli, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, with ``$SP`` the sandpool command and the CLI's environment."""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False,
                          env={**cli.env, "SP": SANDPOOL}, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("pool", POOLS)
def test_a_reader_that_has_gone_does_not_cost_the_exit_code(
    cli: Cli, no_leaks: Sandbox, pool: str
) -> None:
    """The JSON summary meets a closed pipe (EPIPE): the container's 3 is still the status."""
    done = shell(cli, f'"$SP" run --pool {pool} --json -- sh -c "exit 3" | '
                      '(exec 0<&-; sleep 1); echo "status=${PIPESTATUS[0]}"')  # fmt: skip
    assert done.stdout == "status=3\n", done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("json_flag", ["--json", "--image=builtin:default"])
@pytest.mark.parametrize("pool", POOLS)
def test_container_output_into_a_gone_reader_keeps_the_status(
    cli: Cli, no_leaks: Sandbox, pool: str, json_flag: str
) -> None:
    """The container's own writes meet EPIPE, as without sandpool (under --json the relay may
    take one write before it sees the reader gone); its status is what sandpool exits with."""
    script = ("import os, sys, time\nfor _ in range(4):\n    time.sleep(0.5)\n"
              "    try: os.write(1, b'x')\n    except BrokenPipeError: sys.exit(5)\n")  # fmt: skip
    done = shell(cli, f'"$SP" run --pool {pool} {json_flag} -- python3 -c "{script}" | '
                      '(exec 0<&-; sleep 4); echo "status=${PIPESTATUS[0]}"')  # fmt: skip
    assert done.stdout == "status=5\n", done.stderr
    assert "Traceback" not in done.stderr


def runtime_stdio(container_id: str) -> list[str]:
    """What fds 0, 1 and 2 of the container's ``runc run`` / ``runsc run`` are."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if container_id.encode() in argv and b"run" in argv:
                return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in (0, 1, 2)]
    raise AssertionError(f"no runtime process of {container_id}")


@pytest.mark.parametrize("closed", [0, 1, 2])
@pytest.mark.parametrize("pool", POOLS)
def test_a_closed_std_fd_is_dev_null_not_a_descriptor_of_sandpool(
    cli: Cli, no_leaks: Sandbox, pool: str, closed: int
) -> None:
    """With fd 2 closed, sandpool's own eventfd became the runtime's (so the container's)
    stderr: gVisor then failed; runc copied the container's stderr into it."""
    report = 1 if closed != 1 else 2  # "up" goes to an fd that is open
    proc = subprocess.Popen(["bash", "-c", f'exec {closed}>&-; exec "$SP" run --pool {pool} '
                             f'-- sh -c "echo up >&{report}; sleep 60"'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**cli.env, "SP": SANDPOOL}, text=True)  # fmt: skip
    stream = proc.stdout if report == 1 else proc.stderr
    assert stream is not None and stream.readline() == "up\n"
    [row] = json.loads(cli.run("ps", "--json").stdout)
    fds = runtime_stdio(row["id"])
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert fds[closed] == "/dev/null", fds
    assert not any(fd.startswith(("anon_inode", "socket", "/tmp", "/var")) for fd in fds), fds


@pytest.mark.parametrize("pool", POOLS)
def test_closed_stdout_and_stdin_still_run(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    """gVisor failed to start (`chown /dev/stdout`) with stdout closed."""
    out = shell(cli, f'"$SP" run --pool {pool} -- sh -c "echo to-nowhere; echo err >&2" >&-')
    assert (out.returncode, out.stderr) == (0, "err\n")
    # (`timeout`: with the old code, cat read one of sandpool's own descriptors forever)
    both = shell(cli, f'timeout 60 "$SP" run --pool {pool} -- sh -c "cat; exit 4" <&- >&-')
    assert (both.returncode, both.stderr) == (4, "")
    summary = shell(cli, f'"$SP" run --pool {pool} --json -- sh -c "exit 6" 2>&- <&-')
    assert summary.returncode == 6 and json.loads(summary.stdout)["exitCode"] == 6


@pytest.mark.parametrize("pool", POOLS)
def test_json_summary_starts_its_own_line(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    done = cli.run("run", "--pool", pool, "--json", "--", "printf", "abc")
    assert done.returncode == 0, done.stderr
    out, line = done.stdout.split("\n", 1)
    assert out == "abc" and json.loads(line)["exitCode"] == 0
    ended = cli.run("run", "--pool", pool, "--json", "--", "printf", "abc\\n")
    assert ended.stdout.startswith("abc\n{") and ended.stdout.count("\n") == 2
    silent = cli.run("run", "--pool", pool, "--json", "--", "true")
    assert silent.stdout.startswith("{") and silent.stdout.count("\n") == 1


@pytest.mark.parametrize("pool", POOLS)
def test_json_summary_streams_output_before_the_end(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    """Under --json the output is relayed as it comes, not held back until the end."""
    proc = cli.popen("run", "--pool", pool, "--json", "--", "sh", "-c", "echo up; sleep 30")
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == 143


@pytest.mark.parametrize("pool", POOLS)
def test_a_start_error_is_printed_once(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    missing = cli.run("run", "--pool", pool, "--", "/no/such/program")
    assert missing.returncode == 127
    assert len(missing.stderr.splitlines()) == 1, missing.stderr
    assert "/no/such/program" in missing.stderr


def test_a_runtime_start_failure_is_printed_once(cli: Cli, no_leaks: Sandbox) -> None:
    """runc's own line (125) is not repeated by sandpool."""
    done = cli.run("run", "--pool", "performance", "--workdir", "/etc/passwd", "--", "true")
    assert done.returncode == 125
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_ps_shows_a_dead_owners_container_as_orphaned(
    cli: Cli, no_leaks: Sandbox, pool: str
) -> None:
    """`ps` listed a SIGKILLed run's container as running until `gc` (issue 13.9)."""
    if cli.mode == "served":
        pytest.skip("served: the server stops a dead client's container itself")
    proc = cli.running(pool)
    [alive] = json.loads(cli.run("ps", "--json").stdout)
    assert (alive["state"], alive["ownerAlive"]) == ("running", True)
    proc.kill()
    proc.wait(timeout=30)
    listed = cli.run("ps", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["state"], row["ownerAlive"]) == ("orphaned", False)
    assert "1 orphaned container(s)" in listed.stderr and "`sandpool gc`" in listed.stderr
    table = cli.run("ps")
    assert " orphaned " in table.stdout.splitlines()[1] and "STATE" in table.stdout
    assert cli.run("gc").returncode == 0
    assert cli.run("ps").stderr == ""
    proc.communicate(timeout=30)
