"""`sandpool run` end to end, as a user runs it: a real process, real runtimes, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.warm.protocol import server_listens
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]
SANDPOOL = str(Path(sys.executable).parent / "sandpool")


class Cli:
    """``sandpool`` as a user runs it, either in its own process or served by a warm
    ``sandpool serve`` (the same tests must pass both ways)."""

    def __init__(self, sandbox: Sandbox, mode: str, socket: Path) -> None:
        self.sandbox, self.mode = sandbox, mode
        self.env = {**os.environ, "SANDPOOL_CONFIG": str(sandbox.config_file),
                    "SANDPOOL_SOCKET": str(socket)}  # fmt: skip

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run([SANDPOOL, *args], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=False, cwd=cwd)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([SANDPOOL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=self.env)  # fmt: skip

    def running(self, pool: str) -> subprocess.Popen[str]:
        """A ``sandpool run`` whose container has started and sleeps for a minute."""
        proc = self.popen("run", "--pool", pool, "--", "sh", "-c", "echo up; sleep 60")
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        return proc


class Server:
    """A ``sandpool serve`` process on a socket of its own, its log in a file."""

    def __init__(self, socket: Path, log: Path, *options: str) -> None:
        self.socket, self.log = socket, log
        with log.open("w") as out:
            argv = [SANDPOOL, "serve", "--socket", str(socket), *options]
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not server_listens(str(socket)):  # not exists(): a stale file exists at once
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "sandpool serve did not start"
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture(scope="module", params=["in-process", "served"])
def cli(request: pytest.FixtureRequest, sandbox: Sandbox,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:  # fmt: skip
    """The CLI in both modes; in "served" mode a warm server runs for the whole module."""
    base = tmp_path_factory.mktemp("serve")
    socket = base / "serve.sock"
    if request.param == "in-process":
        yield Cli(sandbox, "in-process", socket)  # nobody listens there: runs in-process
        return
    server = Server(socket, base / "serve.log")
    yield Cli(sandbox, "served", socket)
    assert server.stop() == 0, server.log.read_text()
    assert not socket.exists(), "sandpool serve left its socket"
    assert "Traceback" not in server.log.read_text()


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
        (["--disk", "4Mi", "--", "sh", "-c", "dd if=/dev/zero of=/x bs=1M count=8"], 1),
    ],
)  # fmt: skip
def test_exit_codes(cli: Cli, no_leaks: Sandbox, pool: str, args: list[str],
                    code: int) -> None:  # fmt: skip
    done = cli.run("run", "--pool", pool, "--image", "builtin:busybox", *args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if args[0] == "--memory" and code == 125:
        assert "Invalid value for '--memory'" in done.stderr
    if args[0] == "--disk" and code == 1:
        assert "No space left on device" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disk", "10k", "--", "true"], "Invalid value for '--disk'"),
        (["--bogus-flag", "--", "true"], "No such option '--bogus-flag'"),
        (["--image", "oci-archive:/nonexistent.tar", "--", "true"], "/nonexistent.tar"),
    ],
)  # fmt: skip
def test_refusals_before_any_runtime_exit_125(cli: Cli, no_leaks: Sandbox, args: list[str],
                                              message: str) -> None:  # fmt: skip
    """Refused before a pool's runtime is involved (the flags, the image): one pool is enough
    (both were run here before, the same 125 each time); both CLI modes still run."""
    done = cli.run("run", "--pool", "default", "--image", "builtin:busybox", *args)
    assert done.returncode == 125, done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr


def test_unknown_pool_and_missing_runtime_exit_125(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path
) -> None:
    unknown = cli.run("run", "--pool", "nope", "--", "true")
    assert unknown.returncode == 125 and "unknown pool 'nope'" in unknown.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(cli.sandbox.config_file.read_text().replace(
        "  cgroupParent:", "  runscPath: /nope/runsc\n  cgroupParent:"))  # fmt: skip
    done = cli.run("run", "-c", str(bad), "--", "true")
    assert done.returncode == 125
    assert "failed to create gvisor runtime: runsc not found at /nope/runsc" in done.stderr


@pytest.mark.parametrize("state_dir", ["/proc/sandpool-state", "{tmp}/a-file/state"])
def test_an_unusable_state_dir_is_one_line_and_125(
    cli: Cli, no_leaks: Sandbox, tmp_path: Path, state_dir: str
) -> None:
    """Was a traceback and exit 1 (an OSError from the image store)."""
    (tmp_path / "a-file").touch()
    state = state_dir.format(tmp=tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(cli.sandbox.config_file.read_text().replace(
        f"stateDir: {cli.sandbox.state_dir}", f"stateDir: {state}"))  # fmt: skip
    done = cli.run("run", "-c", str(bad), "--pool", "performance", "--", "true")
    assert done.returncode == 125, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"sandpool: cannot use {state}")
    assert f"worker.stateDir {state} must be a writable directory" in done.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_json_summary(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    done = cli.run("run", "--pool", pool, "--json", "--image", "builtin:busybox",
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
def test_stdin_env_workdir(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    piped = cli.run("run", "--pool", pool, "--", "cat", stdin="hi\n")
    assert (piped.returncode, piped.stdout) == (0, "hi\n")
    done = cli.run("run", "--pool", pool, "--env", "A=1", "--env", "B=two words",
                    "--workdir", "/tmp", "--", "sh", "-c", 'echo "$A $B"; pwd')  # fmt: skip
    assert done.stdout == "1 two words\n/tmp\n"


@pytest.mark.parametrize("pool", POOLS)
def test_default_image_has_python3(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    done = cli.run("run", "--pool", pool, "--", "python3", "-c", "print(6 * 7)")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr


@pytest.mark.parametrize("pool", POOLS)
def test_output_streams_before_the_command_ends(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    proc = cli.popen("run", "--pool", pool, "--", "sh", "-c",
                 "echo first; echo e1 >&2; sleep 3; echo second")  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_at = time.monotonic()
    rest, err = proc.communicate(timeout=60)
    ended_at = time.monotonic()
    assert first == "first\n" and rest == "second\n" and err == "e1\n"
    assert ended_at - first_at > 2, "the first line only arrived at the end"


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
@pytest.mark.parametrize("pool", POOLS)
def test_signal_stops_container_and_cleans_up(
    cli: Cli, no_leaks: Sandbox, pool: str, sig: signal.Signals, code: int
) -> None:
    proc = cli.running(pool)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == code


@pytest.mark.parametrize("pool", POOLS)
def test_sigkilled_cli_then_gc_leaves_nothing(cli: Cli, no_leaks: Sandbox, pool: str) -> None:
    if cli.mode == "served":
        pytest.skip("served: the server stops the container itself (test_served_sigkilled_...)")
    proc = cli.running(pool)
    listed = cli.run("ps", "--json")
    assert [row["pool"] for row in json.loads(listed.stdout)] == [pool]
    proc.kill()
    proc.wait(timeout=30)  # its container still holds the pipes: don't wait for EOF
    assert cli.sandbox.leftovers(), "the SIGKILLed run should have left its container"
    gc = cli.run("gc")
    assert gc.returncode == 0 and "1 container(s) removed" in gc.stdout
    assert json.loads(cli.run("ps", "--json").stdout) == []
    proc.communicate(timeout=30)  # gc killed the container: the pipes close


def test_kill_command_stops_a_running_container(cli: Cli, no_leaks: Sandbox) -> None:
    proc = cli.running("performance")
    [row] = json.loads(cli.run("ps", "--json").stdout)
    killed = cli.run("kill", row["id"])
    assert killed.returncode == 0
    proc.communicate(timeout=30)
    assert proc.returncode == 137
    missing = cli.run("kill", "sp-doesnotexist")
    assert missing.returncode != 0 and "no sandpool container" in missing.stderr


def test_kill_during_the_start_is_a_kill_not_a_failed_start(
    cli: Cli, sp: Sandpool, no_leaks: Sandbox
) -> None:
    """Killed as soon as its record exists (before gVisor's ~100 ms start is over)."""
    proc = cli.popen("run", "--pool", "default", "--", "sleep", "60")
    deadline = time.monotonic() + 30
    while not (records := sp.ps()):
        assert time.monotonic() < deadline and proc.poll() is None, "no record appeared"
        time.sleep(0.002)
    sp.kill(records[0].id)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 137, err
    assert "could not start" not in err


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
def test_captured_output_is_whole_and_kept_apart(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """The API captures into memory files the runtime writes directly (gVisor included)."""
    script = "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo err >&2; echo more"
    result = sp.run(pool, ["sh", "-c", script], image="builtin:busybox")
    assert result.exit_code == 0, result.error
    assert result.stdout == b"a" * 3000000 + b"\nmore\n"
    assert result.stderr == b"err\n"
    # Captured output is not the container's memory: more than its limit is still whole.
    big = sp.run(pool, ["head", "-c", "50000000", "/dev/zero"], image="builtin:busybox",
                 memory="30Mi", max_output="64Mi")  # fmt: skip
    assert (big.exit_code, big.oom_killed) == (0, False)
    assert big.stdout is not None and len(big.stdout) == 50000000
    assert not big.output_truncated


@pytest.mark.parametrize("pool", POOLS)
def test_captured_output_past_the_limit_is_cut_and_counted(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    """Only the limit is read into memory; the result says how much was dropped."""
    script = "head -c 3000000 /dev/zero; echo err >&2"
    result = sp.run(pool, ["sh", "-c", script], image="builtin:busybox", max_output="1Mi")
    assert result.exit_code == 0, result.error
    assert result.stdout == b"\0" * (1 << 20)
    assert (result.stdout_dropped, result.stderr_dropped) == (3000000 - (1 << 20), 0)
    assert result.stderr == b"err\n"
    assert result.to_json()["stdoutTruncated"] is True


@pytest.mark.parametrize("pool", POOLS)
def test_output_into_a_shared_regular_file_keeps_its_place(
    cli: Cli, no_leaks: Sandbox, pool: str, tmp_path: Path
) -> None:
    """gVisor writes a host file at its own offset; sandpool must append where the caller is.

    Each stream gets its own file: runc copies stdout and stderr in separate goroutines, so
    their order relative to each other is not defined (for raw runc either)."""
    logs = [tmp_path / "out.log", tmp_path / "err.log"]
    with logs[0].open("wb") as out, logs[1].open("wb") as err:
        for f in (out, err):
            f.write(b"before\n")
            f.flush()
        subprocess.run([SANDPOOL, "run", "--pool", pool, "--", "sh", "-c",
                        "echo out; echo err >&2"], stdout=out, stderr=err, env=cli.env,
                       check=True, timeout=120)  # fmt: skip
        for f in (out, err):
            f.write(b"after\n")
    assert logs[0].read_bytes() == b"before\nout\nafter\n"
    assert logs[1].read_bytes() == b"before\nerr\nafter\n"


# ---- served only: what a warm `sandpool serve` adds ------------------------------------------


@pytest.fixture
def served(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Cli, Server]]:
    """A server of this test's own (tests here stop or kill it)."""
    socket = tmp_path / "serve.sock"
    server = Server(socket, tmp_path / "serve.log")
    yield Cli(sandbox, "served", socket), server
    if server.proc.poll() is None:
        server.stop()


def wait_until_clean(sandbox: Sandbox, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sandbox.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_served_runs_go_through_the_server_with_relative_config(
    served: tuple[Cli, Server], no_leaks: Sandbox, tmp_path: Path
) -> None:
    cli, server = served
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pools.yaml").write_text(cli.sandbox.config_file.read_text())
    done = cli.run("run", "-c", "sub/pools.yaml", "--pool", "performance", "--json", "--",
                   "sh", "-c", "echo hi; exit 4", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 4 and done.stdout.startswith("hi\n"), done.stderr
    container_id = json.loads(done.stdout.splitlines()[-1])["id"]
    assert f"run {container_id} pool=performance exit=4" in server.log.read_text()


@pytest.mark.parametrize("pool", POOLS)
def test_served_sigkilled_client_has_its_container_stopped(
    served: tuple[Cli, Server], no_leaks: Sandbox, pool: str
) -> None:
    cli, _ = served
    proc = cli.running(pool)
    assert cli.sandbox.leftovers(), "the container should be running"
    proc.kill()
    proc.communicate(timeout=30)  # the server killed the container: the pipes close
    wait_until_clean(cli.sandbox)


def test_server_stopping_kills_its_runs_and_removes_its_socket(
    served: tuple[Cli, Server], no_leaks: Sandbox
) -> None:
    cli, server = served
    proc = cli.running("performance")
    assert server.stop() == 0
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 137 and "`sandpool serve` stopped" in err
    assert not server.socket.exists()
    after = cli.run("run", "--pool", "performance", "--", "echo", "in-process")
    assert (after.returncode, after.stdout) == (0, "in-process\n")


def test_a_server_whose_terminal_closes_stops_cleanly(served: tuple[Cli, Server]) -> None:
    _, server = served
    server.proc.send_signal(signal.SIGHUP)
    assert server.proc.wait(timeout=30) == 0
    assert not server.socket.exists()


def test_a_server_killed_mid_run_fails_its_clients_and_gc_cleans_up(
    served: tuple[Cli, Server], no_leaks: Sandbox
) -> None:
    cli, server = served
    proc = cli.running("performance")
    server.proc.kill()
    server.proc.wait()
    assert proc.wait(timeout=30) == 125
    assert cli.sandbox.leftovers(), "the dead server's container runs on until gc"
    gc = cli.run("gc")
    assert gc.returncode == 0 and "1 container(s) removed" in gc.stdout
    _, err = proc.communicate(timeout=30)  # the container is gone: the pipes close
    assert "`sandpool serve` went away during the run" in err


def test_served_config_from_a_relative_sandpool_config(
    served: tuple[Cli, Server], no_leaks: Sandbox, tmp_path: Path
) -> None:
    cli, _ = served
    (tmp_path / "pools.yaml").write_text(cli.sandbox.config_file.read_text())
    env = {**cli.env, "SANDPOOL_CONFIG": "pools.yaml"}
    done = subprocess.run([SANDPOOL, "run", "--pool", "performance", "--", "echo", "rel"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
                          check=False)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "rel\n"), done.stderr


def test_stale_socket_falls_back_to_in_process(
    served: tuple[Cli, Server], no_leaks: Sandbox
) -> None:
    cli, server = served
    server.proc.kill()  # no clean-up: the socket file stays, nobody listens
    server.proc.wait()
    assert server.socket.exists()
    done = cli.run("run", "--pool", "performance", "--", "echo", "ok")
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
    again = Server(server.socket, server.log)  # a new server replaces the stale socket
    assert cli.run("run", "--pool", "performance", "--", "true").returncode == 0
    assert again.stop() == 0


def test_second_server_on_the_same_socket_is_refused(served: tuple[Cli, Server]) -> None:
    _, server = served
    second = subprocess.run([SANDPOOL, "serve", "--socket", str(server.socket)],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert second.returncode == 125
    assert f"another `sandpool serve` already listens on {server.socket}" in second.stderr
    assert server.socket.exists() and server.proc.poll() is None


def test_an_idle_configuration_is_closed_after_the_idle_timeout(
    sandbox: Sandbox, no_leaks: Sandbox, tmp_path: Path
) -> None:
    """``serve --idle-timeout``: the warm state of a configuration no run uses any more (its
    Sandpool, with its warm cgroup slots) is closed; the next run loads it again."""
    server = Server(tmp_path / "serve.sock", tmp_path / "serve.log", "--idle-timeout", "2")
    cli = Cli(sandbox, "served", server.socket)
    try:
        for _ in range(2):
            done = cli.run("run", "--pool", "performance", "--", "true")
            assert done.returncode == 0, done.stderr
            slots = list(Path("/sys/fs/cgroup/memory").glob(
                f"{sandbox.cgroup_parent}/slot-{server.proc.pid}-*"))  # fmt: skip
            assert slots, "the server keeps the finished run's slot warm"
            deadline = time.monotonic() + 30
            while any(slot.exists() for slot in slots):
                assert time.monotonic() < deadline, "the idle configuration was not closed"
                time.sleep(0.1)
        assert server.log.read_text().count("closed the idle configuration") == 2
    finally:
        assert server.stop() == 0
