"""Limits, start failures, signals and what a container sees, answered truthfully and alike
by both runtimes (issue 13: items 1, 5 and 9's runtime parts)."""

from __future__ import annotations

import signal
import time

import pytest

from sandpool.api import Sandpool
from sandpool.errors import ContainerStartFailed
from sandpool.worker import limits
from tests.integration.conftest import Sandbox
from tests.integration.test_run_cli import Cli, cli  # noqa: F401 - the fixture, both modes

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
FORK_UNTIL_REFUSED = """
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(n, e.errno, flush=True)
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    n += 1
"""
# Children under 40 uids of 7 processes each: the guest limit (per uid in gVisor) lets them
# through, so the sandbox's host pids run out and the Sentry panics (it cannot make the next
# process's address space). Each child says once it has its own uid before the next fork: the
# parent's uid never holds more than two processes, so the guest limit cannot refuse the
# parent's fork first (exit 1 instead of the Sentry's death, when the children were slow).
ESCAPE_BY_UID = """
import os, time
ready_r, ready_w = os.pipe()
for uid in range(1000, 1040):
    if os.fork() == 0:
        os.setgid(uid); os.setuid(uid)
        os.write(ready_w, b"u")
        for _ in range(7):
            if os.fork() == 0:
                time.sleep(20); os._exit(0)
        time.sleep(20); os._exit(0)
    os.read(ready_r, 1)
time.sleep(20)
"""
ZOMBIES = """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.2); os._exit(0)
    os._exit(0)
os.wait()
time.sleep(1)
states = []
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        states.append(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0])
    except OSError:
        pass
print(states.count("Z"))
"""


# ---- 13.1: pids mean the container's processes; a dying sandbox says so ----------------------


@pytest.mark.parametrize("pool", POOLS)
def test_pids_limit_counts_the_containers_processes(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """32 processes: the command and 31 children; the 32nd fork fails with EAGAIN inside and
    the run goes on (gVisor used to lose its Sentry to the host pids limit: exit 2)."""
    result = sp.run(pool, ["python3", "-c", FORK_UNTIL_REFUSED], pids=32, timeout=60)
    assert (result.exit_code, result.error) == (0, None), result.stderr
    assert result.stdout == b"31 11\n"


def test_gvisor_runs_the_issues_hundred_processes_under_the_default_limit(
    sp: Sandpool, no_leaks: Sandbox
) -> None:
    script = "for i in $(seq 1 100); do sleep 2 & done; echo spawned; wait"
    result = sp.run("default", ["sh", "-c", script], timeout=60)
    assert (result.exit_code, result.stdout, result.error) == (0, b"spawned\n", None)


def test_a_gvisor_sandbox_that_dies_is_reported_with_its_own_message(
    sp: Sandpool, no_leaks: Sandbox
) -> None:
    result = sp.run("default", ["python3", "-c", ESCAPE_BY_UID], pids=8, timeout=60)
    assert b"Traceback" not in result.stderr, result.stderr  # the guest refused nothing first
    assert result.exit_code == 125 and result.error is not None
    assert result.error.startswith("the gVisor sandbox died: ")
    assert "host limit for --pids 8" in result.error  # it ran out of host pids


# ---- 13.5: start failures named for what they are --------------------------------------------


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("memory", ["1", "1Ki", "7Mi"])
def test_memory_below_the_minimum_is_refused_before_anything_starts(
    sp: Sandpool, no_leaks: Sandbox, pool: str, memory: str
) -> None:
    with pytest.raises(ContainerStartFailed, match=f"memory limit {memory} is below the minimum"):
        sp.run(pool, ["true"], memory=memory)


@pytest.mark.parametrize(("pool", "memory"), [("performance", "1Mi"), ("default", "8Mi")])
def test_running_out_of_memory_while_starting_is_a_start_failure_not_an_oom(
    sp: Sandpool, no_leaks: Sandbox, pool: str, memory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MIN_MEMORY", {})  # what a start under the minimum does
    with pytest.raises(ContainerStartFailed, match=rf"memory limit \({memory}\) is too small"):
        sp.run(pool, ["true"], memory=memory)


@pytest.mark.parametrize("pool", POOLS)
def test_one_pid_starts_the_command_and_refuses_its_fork(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """runc used to fail the start itself (`can't get final child's PID from pipe: EOF`)."""
    result = sp.run(pool, ["sh", "-c", "echo one; true & wait"], pids=1)
    assert result.stdout == b"one\n" and b"can't fork" in (result.stderr or b"")
    assert result.exit_code != 0 and result.error is None


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(
    ("workdir", "message"),
    [("/etc/passwd", "is not a directory in the image"), ("tmp", "is not an absolute path"),
     ("./x", "is not an absolute path"), ("/bin/../etc/passwd", "is not a directory")],
)  # fmt: skip
def test_a_bad_workdir_is_refused_alike(
    sp: Sandpool, no_leaks: Sandbox, pool: str, workdir: str, message: str
) -> None:
    with pytest.raises(ContainerStartFailed, match=f"--workdir '{workdir}' {message}"):
        sp.run(pool, ["pwd"], workdir=workdir)


@pytest.mark.parametrize("pool", POOLS)
def test_a_missing_workdir_is_created_alike(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    result = sp.run(pool, ["pwd"], workdir="/no/such/dir")
    assert (result.exit_code, result.stdout) == (0, b"/no/such/dir\n")


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--memory", "1"], "memory limit 1 is below the minimum"),
     (["--workdir", "/etc/passwd"], "--workdir '/etc/passwd' is not a directory in the image"),
     (["--workdir", "rel"], "--workdir 'rel' is not an absolute path")],
)  # fmt: skip
def test_cli_start_failures_exit_125_naming_the_setting(
    cli: Cli,  # noqa: F811
    no_leaks: Sandbox,
    pool: str,
    flags: list[str],
    message: str,
) -> None:
    done = cli.run("run", "--pool", pool, "--json", *flags, "--", "true")
    assert done.returncode == 125, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "oomKilled" not in done.stdout


# ---- 13.9: stopping, signals, init, what the container sees of the host -----------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("pool", POOLS)
def test_a_signalled_run_stops_as_fast_on_gvisor_as_on_runc(
    cli: Cli,  # noqa: F811
    no_leaks: Sandbox,
    pool: str,
    sig: signal.Signals,
    code: int,
) -> None:
    """In-process, gVisor's `runsc delete --force` used to wait for the container's end."""
    proc = cli.running(pool)
    sent = time.monotonic()
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == code
    assert time.monotonic() - sent < 5, "the run took as long as its container to stop"


@pytest.mark.parametrize("pool", POOLS)
def test_a_command_killed_by_a_signal_exits_128_plus_it(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """runc ran the command as PID 1, which the kernel shields from unhandled signals."""
    assert sp.run(pool, ["sh", "-c", "kill -SEGV $$"]).exit_code == 139
    assert sp.run(pool, ["sh", "-c", "kill -TERM $$; sleep 5"]).exit_code == 143


@pytest.mark.parametrize("pool", POOLS)
def test_orphans_are_reaped(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    result = sp.run(pool, ["python3", "-c", ZOMBIES])
    assert (result.exit_code, result.stdout) == (0, b"0\n"), result.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_the_container_sees_no_host_path_or_cgroup(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    result = sp.run(pool, ["cat", "/proc/self/mountinfo", "/proc/self/cgroup"])
    seen = (result.stdout or b"").decode()
    assert result.exit_code == 0 and seen
    for host_detail in (str(no_leaks.base), no_leaks.cgroup_parent, "slot-", "/images/"):
        assert host_detail not in seen, f"{host_detail!r} shows in:\n{seen}"
