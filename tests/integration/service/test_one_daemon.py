"""One daemon (issue 16): a real ``sandpool server`` also serves ``sandpool run`` and
``sandpool sandbox`` on its serve socket, on the Sandpool its HTTP API uses; SIGTERM lets
requests finish within ``gateway.shutdownTimeout``, stops the rest and terminates or keeps
the sandboxes (``gateway.onShutdown``); SIGKILL leaves what the next start adopts or removes.
Every test checks the state afterwards and that nothing leaked, on runc and on gVisor."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from sandpool.client import Client
from tests.integration.conftest import Sandbox
from tests.integration.service.conftest import SANDPOOL, ServerProcess

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc, pytest.mark.timeout(400)]
POOLS = ["performance", "default"]  # runc, gVisor
KEEP = {"SANDPOOL_GATEWAY_ONSHUTDOWN": "keep"}
STOPPED = (0, -signal.SIGTERM)  # uvicorn ends by re-raising the signal it handled


def client_env(server: ServerProcess, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A user's shell next to the server: its socket and the same configuration file."""
    return {**os.environ, "SANDPOOL_SOCKET": str(server.socket),
            "SANDPOOL_CONFIG": str(server.box.config_file), **(extra or {})}  # fmt: skip


def sandpool(server: ServerProcess, *args: str, extra: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([SANDPOOL, *args], capture_output=True, text=True, timeout=timeout,
                          env=client_env(server, extra), check=False)  # fmt: skip


def started(server: ServerProcess, pool: str, script: str) -> subprocess.Popen[str]:
    """A served ``sandpool run`` whose container has printed ``up``."""
    argv = [SANDPOOL, "run", "--pool", pool, "--", "sh", "-c", f"echo up; {script}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=client_env(server))  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    return proc


def stderr_so_far(proc: subprocess.Popen[str], wanted: str, timeout: float = 30) -> str:
    """What ``proc`` (exited) wrote on stderr, up to ``wanted``: without waiting for the pipe's
    end, which a served run's container holds (the client passed it its stdio) until it exits."""
    assert proc.stderr is not None
    fd, text, deadline = proc.stderr.fileno(), "", time.monotonic() + timeout
    while wanted not in text and select.select([fd], [], [], deadline - time.monotonic())[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text


def create_sandbox(server: ServerProcess, pool: str, extra: dict[str, str] | None = None) -> str:
    made = sandpool(server, "sandbox", "create", "--pool", pool, "--json", extra=extra)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def sandbox_states(server: ServerProcess, extra: dict[str, str] | None = None) -> dict[str, str]:
    listed = sandpool(server, "sandbox", "ls", "--json", extra=extra)
    assert listed.returncode == 0, listed.stderr
    return {row["id"]: row["state"] for row in json.loads(listed.stdout)}


def assert_clean(box: Sandbox, server: ServerProcess) -> None:
    assert not box.leftovers(), box.leftovers()
    assert not server.socket.exists(), "the server left its socket"
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.mark.parametrize("pool", POOLS)
def test_sandpool_run_and_sandbox_use_the_servers_socket_and_sandpool(
    service_box: Sandbox, pool: str
) -> None:
    server = ServerProcess(service_box, env={"SANDPOOL_ADMIN_KEY": "k-daemon"})
    try:
        done = sandpool(server, "run", "--pool", pool, "--", "sh", "-c", "echo hi; exit 3")
        assert (done.returncode, done.stdout) == (3, "hi\n"), done.stderr
        assert f"pool={pool} exit=3" in server.stderr()  # served, not in-process
        bad = sandpool(server, "run", "--pool", pool, "--cpu", "nan", "--", "true")
        assert bad.returncode == 125
        assert bad.stderr.startswith("sandpool serve: bad request: Invalid value for '--cpu'")
        box = create_sandbox(server, pool)
        ran = sandpool(server, "sandbox", "exec", box, "sh", "-c", "echo in-box")
        assert (ran.returncode, ran.stdout) == (0, "in-box\n"), ran.stderr
        assert sandpool(server, "sandbox", "rm", box).returncode == 0
        with Client(server.url, "k-daemon") as admin:  # the HTTP side meanwhile
            admin.create_tenant(f"one-{pool}")
            key = admin.create_key(f"one-{pool}").key
        with Client(server.url, key) as client:
            assert client.run(["echo", "http"], pool=pool).stdout == b"http\n"
        # the client named the server's own file: no second Sandpool was loaded for it
        assert "loaded a configuration" not in server.stderr()
    finally:
        assert server.stop() in STOPPED, server.stderr()
    assert_clean(service_box, server)


@pytest.mark.parametrize("pool", POOLS)
def test_sigterm_finishes_short_runs_stops_long_ones_and_terminates_sandboxes(
    service_box: Sandbox, pool: str
) -> None:
    """shutdownTimeout is 2 s here: a run that ends within it ends normally; one that does
    not is stopped (137 and a line); the sandbox is terminated (onShutdown: terminate)."""
    server = ServerProcess(service_box)
    try:
        box = create_sandbox(server, pool)
        short = started(server, pool, "sleep 0.5; echo done")
        long = started(server, pool, "sleep 60")
        stopping = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert short.wait(30) == 0 and short.stdout is not None
        assert short.stdout.read() == "done\n"
        assert long.wait(60) == 137 and long.stderr is not None
        assert "`sandpool server` stopped; the container was killed" in long.stderr.read()
        assert server.proc.wait(60) in STOPPED, server.stderr()
        assert time.monotonic() - stopping < 40
        assert f"sandbox {box}" not in " ".join(service_box.leftovers())
    finally:
        server.stop()
    assert_clean(service_box, server)


@pytest.mark.parametrize("pool", POOLS)
def test_on_shutdown_keep_leaves_sandboxes_for_the_next_start_to_adopt(
    service_box: Sandbox, pool: str
) -> None:
    """Set by $SANDPOOL_GATEWAY_ONSHUTDOWN; the sandbox, its files and its exec survive."""
    first = ServerProcess(service_box, env=KEEP)
    try:
        box = create_sandbox(first, pool, KEEP)
        wrote = sandpool(
            first, "sandbox", "exec", box, "sh", "-c", "echo kept > /tmp/f", extra=KEEP
        )
        assert wrote.returncode == 0, wrote.stderr
    finally:
        assert first.stop() in STOPPED, first.stderr()
    assert service_box.leftovers(), "the sandbox should still be running"
    second = ServerProcess(service_box, env=KEEP, socket=first.socket)
    try:
        assert sandbox_states(second, KEEP) == {box: "running"}
        read = sandpool(second, "sandbox", "exec", box, "cat", "/tmp/f", extra=KEEP)
        assert (read.returncode, read.stdout) == (0, "kept\n"), read.stderr
        assert sandpool(second, "sandbox", "rm", box, extra=KEEP).returncode == 0
    finally:
        assert second.stop() in STOPPED, second.stderr()
    assert_clean(service_box, second)


@pytest.mark.parametrize("pool", POOLS)
def test_sigkill_mid_run_the_next_start_adopts_the_sandbox_and_removes_the_run(
    service_box: Sandbox, pool: str
) -> None:
    first = ServerProcess(service_box)
    box = create_sandbox(first, pool)
    run = started(first, pool, "sleep 60")
    first.stop(signal.SIGKILL)
    assert run.wait(30) == 125
    assert "went away during the run" in stderr_so_far(run, "went away during the run")
    # the run's container (still sleeping: the next start must stop it) and the sandbox,
    # ownerless
    assert len(service_box.leftovers()) > 1
    second = ServerProcess(service_box, socket=first.socket)  # replaces the stale socket
    try:
        done = sandpool(second, "run", "--pool", pool, "--", "true")  # reconciles dead owners
        assert done.returncode == 0, done.stderr
        assert sandbox_states(second) == {box: "running"}
        assert sandpool(second, "sandbox", "rm", box).returncode == 0
    finally:
        assert second.stop() in STOPPED, second.stderr()
    assert_clean(service_box, second)
