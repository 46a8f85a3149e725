"""`sandpool sandbox …` end to end: real processes through a real `sandpool serve`, exit codes,
--json, a sandbox outliving the CLI, a SIGKILLed server's sandboxes adopted on restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.test_run_cli import SANDPOOL, Server

pytestmark = pytest.mark.timeout(240)


class SandboxCli:
    """``sandpool sandbox`` with the test's config and socket."""

    def __init__(self, config: Path, socket: Path) -> None:
        self.env = {**os.environ, "SANDPOOL_CONFIG": str(config),
                    "SANDPOOL_SOCKET": str(socket)}  # fmt: skip

    def __call__(
        self, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([SANDPOOL, "sandbox", *args], input=stdin, capture_output=True,
                              env=self.env, timeout=120, check=False)  # fmt: skip

    def json(self, *args: str) -> object:
        done = self(*args, "--json") if args[0] != "exec" else self(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _cli(boxes: Sandpool, tmp_path: Path) -> tuple[SandboxCli, Server]:
    socket = tmp_path / "serve.sock"
    server = Server(socket, tmp_path / "serve.log")
    config = Path(boxes.config.state_dir).parent / "sandbox-pools.yaml"
    return SandboxCli(config, socket), server


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sandbox_commands_through_serve(boxes: Sandpool, runtime: str, tmp_path: Path) -> None:
    """create, ls, exec (status, streams, stdin, 127), cp both ways, pause/resume, rm; bad
    ids and states are one line and 125; the server stops cleanly and leaves nothing."""
    cli, server = _cli(boxes, tmp_path)
    created = cli.json("create", "--pool", runtime, "-l", "job=7", "-e", "A=1")
    assert isinstance(created, dict) and created["state"] == "running"
    box = created["id"]
    listed = cli.json("ls", "-l", "job=7")
    assert [row["id"] for row in listed] == [box]  # type: ignore[union-attr]
    done = cli("exec", box, "sh", "-c", "echo out $A; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out 1\n", b"err\n")
    assert cli("exec", "-i", box, "cat", stdin=b"piped\n").stdout == b"piped\n"
    assert cli("exec", box, "no-such-command").returncode == 127
    assert cli("exec", box, "--", "sh", "-c", "exit 4").returncode == 4  # as `run -- CMD`
    bad_timeout = cli("exec", "--timeout", "nan", box, "true")
    assert bad_timeout.returncode == 125 and b"'--timeout'" in bad_timeout.stderr
    blob = os.urandom(200_000)
    (tmp_path / "in.bin").write_bytes(blob)
    assert cli("cp", str(tmp_path / "in.bin"), f"{box}:/data.bin").returncode == 0
    assert cli("cp", f"{box}:/data.bin", str(tmp_path / "out.bin")).returncode == 0
    assert (tmp_path / "out.bin").read_bytes() == blob
    assert cli("pause", box).returncode == 0
    paused = cli("exec", box, "true")
    assert paused.returncode == 125 and b"it is paused" in paused.stderr
    assert cli("resume", box).returncode == 0
    removed = cli.json("rm", box)
    assert isinstance(removed, dict) and (removed["state"], removed["reason"]) == (
        "terminated", "killed")  # fmt: skip
    for args in (("exec", box, "true"), ("exec", "sp-nope", "true"), ("rm", "sp-nope")):
        bad = cli(*args)
        assert bad.returncode == 125 and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert b"Traceback" not in bad.stderr
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()


@pytest.mark.root
@pytest.mark.runc
def test_without_a_server_the_command_says_how_to_start_one(
    boxes: Sandpool, tmp_path: Path
) -> None:
    """No `sandpool serve`: exit 125, one line naming the fix, nothing created."""
    config = Path(boxes.config.state_dir).parent / "sandbox-pools.yaml"
    cli = SandboxCli(config, tmp_path / "nobody.sock")
    done = cli("create", "--pool", "runc")
    assert done.returncode == 125
    assert done.stderr.decode().startswith("ServeError: `sandpool sandbox` needs a running")
    assert "sandpool serve &" in done.stderr.decode() and len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_restarted_server_adopts_the_sandboxes_of_a_sigkilled_one(
    boxes: Sandpool, runtime: str, tmp_path: Path
) -> None:
    """SIGKILL the server: its sandbox keeps running; the next server adopts it (exec and
    files work), and terminates it when it stops."""
    cli, server = _cli(boxes, tmp_path)
    created = cli.json("create", "--pool", runtime)
    assert isinstance(created, dict)
    box = created["id"]
    assert cli("exec", box, "sh", "-c", "echo kept > /kept").returncode == 0
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    (tmp_path / "serve.sock").unlink()  # stale: Server() waits for the new one's socket
    restarted = Server(tmp_path / "serve.sock", tmp_path / "serve2.log")
    listed = cli.json("ls")
    assert [(r["id"], r["state"]) for r in listed] == [(box, "running")]  # type: ignore[union-attr]
    assert cli("exec", box, "cat", "/kept").stdout == b"kept\n"
    assert restarted.stop() == 0
    assert "adopted sandbox" in (tmp_path / "serve2.log").read_text()


@pytest.mark.root
@pytest.mark.runc
def test_stopping_the_server_ends_its_sandboxes_and_their_execs(
    boxes: Sandpool, tmp_path: Path
) -> None:
    """SIGTERM to `sandpool serve` while a client streams a long exec: the exec ends 137 at
    once (its sandbox is terminated), the server exits 0, and nothing is left."""
    cli, server = _cli(boxes, tmp_path)
    created = cli.json("create", "--pool", "runc")
    assert isinstance(created, dict)
    client = subprocess.Popen([SANDPOOL, "sandbox", "exec", created["id"], "sh", "-c",
                               "echo up; sleep 60"], env=cli.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    assert client.stdout is not None and client.stdout.readline() == b"up\n"
    started = time.monotonic()
    assert server.stop() == 0
    assert client.wait(timeout=30) == 137
    assert time.monotonic() - started < 30
