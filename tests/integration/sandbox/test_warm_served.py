"""One-shot runs handed to a server claim warm containers too (issue 18), real runc and
gVisor: a `sandpool run` through `sandpool serve`'s socket gets a warm container (its id is
one `sandbox ls --warm` listed) with its exit code, stdin/stdout/stderr (the client's own
fds) and `--json`; a timeout and an OOM are told as cold ones are; consecutive served warm
runs are isolated; `ps` shows a claimed one as running; a client's signal, its SIGKILL and
the server's SIGTERM stop the warm run as they stop a cold one, and nothing is left; an
HTTP `POST /v1/runs` of `sandpool server` claims one as well."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox as Installation
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.sandbox.test_warm import LOOK, SIZE, _pools
from tests.integration.sandbox.test_warm_run import CHILD_HOG
from tests.integration.service.conftest import ServerProcess
from tests.integration.test_run_cli import SANDPOOL, Server

pytestmark = pytest.mark.timeout(300)


class Served:
    """A user's CLI next to a server (``sandpool serve``, or ``sandpool server``'s socket)
    whose configuration is the warm pools of ``test_warm``."""

    def __init__(self, install: Installation, config: Path, socket: Path,
                 log: Callable[[], str]) -> None:  # fmt: skip
        self.install, self.log = install, log
        self.env = {**os.environ, "SANDPOOL_CONFIG": str(config),
                    "SANDPOOL_SOCKET": str(socket)}  # fmt: skip

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SANDPOOL, *args], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=180, check=False)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([SANDPOOL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=self.env)  # fmt: skip

    def run_json(self, pool: str, *args: str, stdin: str | None = None,
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:  # fmt: skip
        """A served `sandpool run --json`: the process and its summary (the last line)."""
        done = self.cli("run", "--pool", pool, "--json", *args, stdin=stdin)
        assert "Traceback" not in done.stderr, done.stderr
        return done, json.loads(done.stdout.splitlines()[-1])

    def warm_ids(self, pool: str, within: float = 120) -> set[str]:
        """The pool's warm containers, once it is full (the first call loads the
        configuration in the server, which starts its warm pools)."""
        deadline = time.monotonic() + within
        while True:
            listed = self.cli("sandbox", "ls", "--warm", "--pool", pool, "--json")
            assert listed.returncode == 0, listed.stderr
            ids = {str(row["id"]) for row in json.loads(listed.stdout)}
            if len(ids) >= SIZE[pool.removeprefix("warm-")]:
                return ids
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def ps(self) -> dict[str, str]:
        done = self.cli("ps", "--json")
        assert done.returncode == 0, done.stderr
        return {row["id"]: row["state"] for row in json.loads(done.stdout)}


def wait_clean(install: Installation, within: float = 60) -> list[str]:
    """What is left once the background removals had ``within`` seconds."""
    deadline = time.monotonic() + within
    while (left := install.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def server(sandbox: Installation, tmp_path: Path) -> Iterator[tuple[Served, Server]]:
    """A `sandpool serve` of the test's own; it stops cleanly after the test (its warm
    containers removed): nothing is left."""
    config = tmp_path / "warm-served.yaml"
    config.write_text(_pools(sandbox))
    server = Server(tmp_path / "serve.sock", tmp_path / "serve.log")
    try:
        yield Served(sandbox, config, server.socket, server.log.read_text), server
    finally:
        if server.proc.poll() is None:
            assert server.stop() == 0, server.log.read_text()
    log = server.log.read_text()
    assert "Traceback" not in log, log
    assert wait_clean(sandbox) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_served_run_claims_a_warm_container(server: tuple[Served, Server], runtime: str) -> None:
    """Exit code, the client's stdin/stdout/stderr, `--json`; a timeout (124) and a child's
    OOM kill (137, oomKilled) as a cold run tells them; each a warm container."""
    served, _ = server
    pool = f"warm-{runtime}"
    ready = served.warm_ids(pool)
    done, summary = served.run_json(pool, "--env", "A=1", "--", "sh", "-c",
                                    "echo out $A; echo err >&2; cat; exit 3",
                                    stdin="from stdin")  # fmt: skip
    assert summary["id"] in ready, (summary, ready)
    assert done.returncode == 3 and summary["exitCode"] == 3, done.stderr
    assert done.stdout.startswith("out 1\nfrom stdin\n") and done.stderr == "err\n"
    assert f"run {summary['id']} pool={pool} exit=3" in served.log()
    ready = served.warm_ids(pool)
    began = time.monotonic()
    done, summary = served.run_json(pool, "--timeout", "2", "--", "sleep", "30")
    assert summary["id"] in ready and (done.returncode, summary["timedOut"]) == (124, True)
    assert time.monotonic() - began < 25
    ready = served.warm_ids(pool)
    done, summary = served.run_json(pool, "--timeout", "90", "--", "sh", "-c", CHILD_HOG)
    assert summary["id"] in ready, (summary, ready)
    assert (done.returncode, summary["oomKilled"]) == (137, True), done.stderr
    missing = served.cli("run", "--pool", pool, "--", "no-such-command")
    assert missing.returncode == 127 and "no-such-command" in missing.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_consecutive_served_warm_runs_are_isolated(
    server: tuple[Served, Server], runtime: str
) -> None:
    """A served warm run leaves a file and a background process; the next sees neither."""
    served, _ = server
    pool = f"warm-{runtime}"
    ready = served.warm_ids(pool)
    _, first = served.run_json(pool, "--", "sh", "-c", "echo secret > /left-by-a; sleep 1000 &")
    assert first["id"] in ready and first["exitCode"] == 0
    ready = served.warm_ids(pool)
    done, seen = served.run_json(pool, "--", "sh", "-c", LOOK)
    assert seen["id"] in ready and seen["id"] != first["id"]
    assert "secret" not in done.stdout and "No such file" in done.stdout
    processes = [line for line in done.stdout.splitlines() if line.startswith("ps: ")]
    assert len(processes) == 2, done.stdout  # the init and this shell: nothing left by A


def _claimed(served: Served, pool: str, ready: set[str]) -> tuple[subprocess.Popen[str], str]:
    """A served warm run that printed ``up`` and sleeps; its container's id."""
    proc = served.popen("run", "--pool", pool, "--", "sh", "-c", "echo up; sleep 60")
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    running = {box for box, state in served.ps().items() if state == "running"}
    [box] = running & ready  # a warm one, shown running, not warm
    return proc, box


def _gone(served: Served, box: str, within: float = 30) -> None:
    directory = served.install.state_dir / "containers" / box
    deadline = time.monotonic() + within
    while directory.exists():
        assert time.monotonic() < deadline, f"{box} was not removed"
        time.sleep(0.05)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_served_warm_run_stops_as_a_cold_one(server: tuple[Served, Server], runtime: str) -> None:
    """`ps` shows the claimed container running; SIGINT to the client ends it 130, its
    SIGKILL has the server stop and remove the container, the server's SIGTERM ends it 137
    with a line; each time the container is removed."""
    served, serve = server
    pool = f"warm-{runtime}"
    proc, box = _claimed(served, pool, served.warm_ids(pool))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    _gone(served, box)
    proc, box = _claimed(served, pool, served.warm_ids(pool))
    proc.kill()
    proc.communicate(timeout=30)  # the server killed the container: the pipes close
    _gone(served, box)
    proc, box = _claimed(served, pool, served.warm_ids(pool))
    assert serve.stop() == 0
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 137 and "`sandpool serve` stopped" in err, err
    _gone(served, box, within=5)  # the server removed it before it exited


def _warm_in_ps(install: Installation, pool: str, within: float = 120) -> set[str]:
    """The pool's warm containers as `ps` (in-process: it reads the state dir) shows them,
    once the pool is full."""
    env = {**os.environ, "SANDPOOL_CONFIG": str(install.config_file),
           "SANDPOOL_SOCKET": "/nonexistent"}  # fmt: skip
    deadline = time.monotonic() + within
    while True:
        done = subprocess.run([SANDPOOL, "ps", "--json"], capture_output=True, text=True,
                              env=env, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        ids = {row["id"] for row in rows if row["pool"] == pool and row["state"] == "warm"}
        if len(ids) >= SIZE[pool.removeprefix("warm-")]:
            return ids
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


@pytest.mark.root
@pytest.mark.runc
@pytest.mark.runsc
def test_an_http_run_claims_a_warm_container(sandbox: Installation) -> None:
    """`sandpool server` with no serve socket fills its warm pools at start, and its
    `POST /v1/runs` claims a warm container of each runtime, with its exit code, stdin and
    output."""
    install = copy.copy(sandbox)
    install.config_file = sandbox.base / "warm-http.yaml"
    install.config_file.write_text(_pools(sandbox))
    server = ServerProcess(install, env={"SANDPOOL_ADMIN_KEY": "k-warm"},
                           extra_args=("--no-socket",))  # fmt: skip
    try:
        tenant = f"warm-{time.time_ns()}"  # the session's database may have run this before
        with server.client("k-warm") as admin:
            admin.create_tenant(tenant)
            key = admin.create_key(tenant).key
        with server.client(key) as client:
            for runtime in ("runc", "gvisor"):
                ready = _warm_in_ps(install, f"warm-{runtime}")
                result = client.run(["sh", "-c", "cat; echo err >&2; exit 5"],
                                    pool=f"warm-{runtime}", stdin=b"fed")  # fmt: skip
                assert result.id in ready, (result, ready)
                assert (result.exit_code, result.stdout, result.stderr) == (5, b"fed", b"err\n")
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.stderr()
    assert "Traceback" not in server.stderr()
    assert wait_clean(sandbox) == []
