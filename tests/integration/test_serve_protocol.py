"""The warm-run protocol against a real ``sandpool serve``: adversarial and random messages
(issue 13.8). Each is answered with 125 and one line on the client's stderr, quickly, with no
traceback and no growth of the server's memory, and the server keeps serving."""

from __future__ import annotations

import json
import os
import random
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.warm.run_argv import parse_argv
from tests.integration.conftest import Sandbox
from tests.integration.test_run_cli import POOLS, Cli, Server

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
ANSWER_WITHIN_S = 30.0
UP_THEN_SLEEP = ["--", "sh", "-c", "echo up; sleep 60"]
SO_SNDBUFFORCE = 32  # <asm-generic/socket.h>; Python does not name it


class Exchange:
    """One connection as a client makes it: a first message with (some of) fds 0, 1, 2, then
    maybe more messages; the server's answer and what it wrote on the client's stderr."""

    def __init__(self, path: Path, first: bytes, *, fds: int = 3) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)  # 1 MiB+
        self.sock.connect(str(path))
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        socket.send_fds(self.sock, [first], [null, out_w, err_w][:fds])
        for fd in (null, out_w, err_w):
            os.close(fd)
        self.started = time.monotonic()

    def wait_started(self) -> None:
        """Until the container printed ``up`` (a stop during the start has the runtime print
        its own complaint; that is not what these tests are about)."""
        ready = select.select([self.out_r], [], [], ANSWER_WITHIN_S)[0]
        assert ready and os.read(self.out_r, 16) == b"up\n"

    def send(self, message: bytes) -> None:
        self.sock.send(message)

    def answer(self) -> tuple[int | None, str, float]:
        """The exit status (None: the server closed without one), stderr, seconds taken."""
        self.sock.settimeout(ANSWER_WITHIN_S)
        try:
            data = self.sock.recv(1 << 16)
        finally:
            self.sock.close()
        took = time.monotonic() - self.started
        code = json.loads(data)["exit"] if data else None
        err = _read_all(self.err_r)
        os.close(self.out_r)
        return code, err, took


def _read_all(fd: int) -> str:
    chunks, deadline = [], time.monotonic() + ANSWER_WITHIN_S
    while time.monotonic() < deadline and select.select([fd], [], [], 1)[0]:
        if not (chunk := os.read(fd, 65536)):
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def run_message(cli: Cli, argv: list[str], **changes: object) -> bytes:
    """The structured request the thin client makes of ``sandpool run ARGV``."""
    run = parse_argv(argv)
    assert run is not None
    message = {"run": run, "config": run.pop("config", []), "cwd": "/",
               "env": {"SANDPOOL_CONFIG": str(cli.sandbox.config_file)}}  # fmt: skip
    return json.dumps({**message, **changes}).encode()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("protocol")
    server = Server(base / "serve.sock", base / "serve.log")
    yield server
    assert server.stop() == 0, server.log.read_text()
    assert "Traceback" not in server.log.read_text(), server.log.read_text()


@pytest.fixture
def served(sandbox: Sandbox, server: Server) -> Cli:
    return Cli(sandbox, "served", server.socket)


def assert_refused(code: int | None, err: str, took: float, *needles: str) -> None:
    assert code == 125, err
    assert len(err.splitlines()) == 1 and err.startswith("sandpool serve: "), err
    assert took < ANSWER_WITHIN_S
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(
    ("message", "needle"),
    [({"signal": -128}, "signal must be one of 1, 2, 15, not -128"),
     ({"signal": 10**30}, "signal must be one of 1, 2, 15"),
     ({"signal": 9}, "not 9"), ({"signal": True}, "not true"), ({"signal": "2"}, "not str"),
     ({"signal": 2, "x": 1}, "expected signal"), ([2], "a JSON list, not an object")],
)  # fmt: skip
def test_a_bad_message_during_a_run_stops_it_with_125(
    served: Cli, no_leaks: Sandbox, server: Server, pool: str, message: object, needle: str
) -> None:
    """`{"signal": -128}` used to kill the run and report exit 0; 10**30 came back as the
    exit status."""
    exchange = Exchange(server.socket, run_message(served, ["--pool", pool, *UP_THEN_SLEEP]))
    exchange.wait_started()
    exchange.send(json.dumps(message).encode())
    code, err, took = exchange.answer()
    assert_refused(code, err, took, needle, "the run was stopped")
    assert took < 20, "the container should have been stopped at once"


@pytest.mark.parametrize("pool", POOLS)
def test_nul_bytes_are_refused_not_cut_short(served: Cli, no_leaks: Sandbox, server: Server,
                                             pool: str) -> None:  # fmt: skip
    """A NUL in the command exited 1; one in --env was silently truncated on gVisor."""
    argv = ["--pool", pool, "--", "echo", "a\0b"]
    assert_refused(*Exchange(server.socket, run_message(served, argv)).answer(),
                   "entry 1 of command contains a NUL byte")  # fmt: skip
    env = ["--pool", pool, "--env", "A=x\0y", "--", "sh", "-c", "echo $A"]
    assert_refused(*Exchange(server.socket, run_message(served, env)).answer(), "NUL byte")


def test_nul_bytes_are_refused_by_the_api(sp: object, no_leaks: Sandbox) -> None:
    from sandpool.api import Sandpool
    from sandpool.errors import ContainerStartFailed

    assert isinstance(sp, Sandpool)
    for pool in POOLS:
        with pytest.raises(ContainerStartFailed, match="argument 1 of the command contains a NUL"):
            sp.run(pool, ["echo", "a\0b"])
        with pytest.raises(ContainerStartFailed, match="--env 'A' contains a NUL byte"):
            sp.run(pool, ["true"], env=["A=x\0y"])


def adversarial(cli: Cli) -> list[tuple[bytes, str]]:
    """First messages a client could send, each with the words its answer must have."""
    ok = json.loads(run_message(cli, ["--pool", "performance", "--", "true"]))
    return [
        (b"\xff\xfe not utf-8", "not JSON"),
        (b"{", "not JSON"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b"9" * 5000, "not JSON"),  # more digits than Python converts
        (b"NaN", "not an object"),
        (b'"text"', "not an object"),
        (b"{}", "expected config, cwd, env, run"),
        (json.dumps({**ok, "extra": 1}).encode(), "expected config, cwd, env, run"),
        (json.dumps({**ok, "run": "--pool"}).encode(), "run must be an object"),
        (json.dumps({**ok, "run": {"command": [1, 2]}}).encode(),
         "entry 0 of command must be a string"),
        (json.dumps({**ok, "run": {"command": ["x"] * 70000}}).encode(), "more than 65536"),
        (json.dumps({**ok, "run": {"command": ["\ud800"]}}).encode(), "not valid UTF-8"),
        (json.dumps({**ok, "run": {**ok["run"], "cpu": float("nan")}}).encode(),
         "Invalid value for '--cpu'"),
        (json.dumps({**ok, "run": {**ok["run"], "argv": []}}).encode(), "unknown fields"),
        (json.dumps({**ok, "config": "a.yaml"}).encode(), "config must be a list"),
        (json.dumps({**ok, "cwd": "relative"}).encode(), "cwd must be an absolute path"),
        (json.dumps({**ok, "cwd": "/" + "a" * 5000}).encode(), "at most 4096 bytes"),
        (json.dumps({**ok, "cwd": None}).encode(), "cwd must be a string"),
        (json.dumps({**ok, "env": []}).encode(), "env must be an object"),
        (json.dumps({**ok, "env": {"PATH": "/x"}}).encode(), "not a SANDPOOL_* variable"),
        (json.dumps({**ok, "env": {"SANDPOOL_X": 1}}).encode(), "env SANDPOOL_X must be a"),
        (json.dumps({**ok, "env": {"SANDPOOL_X": "a\0"}}).encode(), "NUL byte"),
        (json.dumps({**ok, "env": {f"SANDPOOL_{i}": "" for i in range(2000)}}).encode(),
         "more than 1024"),
        (b" " * ((1 << 20) + 10), "bytes or more"),
    ]  # fmt: skip


def random_json(rng: random.Random, depth: int = 0) -> object:
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 6 else [])
    kind = rng.choice(kinds)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == "dict":  # never the keys of a run message: nothing here may start a container
        return {
            f"k{rng.randrange(99)}": random_json(rng, depth + 1) for _ in range(rng.randrange(5))
        }
    if kind == "int":
        return rng.randrange(-(10**40), 10**40)
    if kind == "float":
        return rng.random() * 10 ** rng.randrange(-300, 300)
    if kind == "str":
        return "".join(chr(rng.randrange(0x300)) for _ in range(rng.randrange(20)))
    return rng.random() < 0.5 if kind == "bool" else None


def random_messages(rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        if rng.random() < 0.4:
            yield rng.randbytes(rng.randrange(1, 4000))
        else:
            yield json.dumps(random_json(rng)).encode()


def test_fuzz_the_first_message(served: Cli, server: Server) -> None:
    """Adversarial and random first messages, with 3, 1 or no fds: 125 and one line each,
    in bounded time and memory; the server keeps serving and logs no traceback."""
    rss_before = rss_kib(server.proc.pid)
    rng = random.Random(13)
    cases = [*adversarial(served), *((m, "") for m in random_messages(rng, 150))]
    for i, (message, needle) in enumerate(cases):
        exchange = Exchange(server.socket, message, fds=3 if i % 7 else i % 2)
        code, err, took = exchange.answer()
        if i % 7:  # with the client's stderr: its line
            assert_refused(code, err, took, needle)
        else:  # without it: still 125, the line goes to /dev/null
            assert (code, err) == (125, "")
    assert server.proc.poll() is None
    assert rss_kib(server.proc.pid) - rss_before < 100 * 1024, "the server's memory grew"
    healthy = served.run("run", "--pool", "performance", "--", "echo", "still here")
    assert (healthy.returncode, healthy.stdout) == (0, "still here\n"), healthy.stderr
    assert "Traceback" not in server.log.read_text()


def test_fuzz_messages_during_a_run(served: Cli, no_leaks: Sandbox, server: Server) -> None:
    """Random messages after the first: each run is stopped and answered 125 with a line."""
    rng = random.Random(8)
    for message in random_messages(rng, 12):
        exchange = Exchange(
            server.socket, run_message(served, ["--pool", "performance", *UP_THEN_SLEEP])
        )
        exchange.wait_started()
        exchange.send(message)
        assert_refused(*exchange.answer(), "bad message, the run was stopped")
    assert "Traceback" not in server.log.read_text()


def test_a_bad_exit_status_from_a_server_is_not_passed_on(tmp_path: Path) -> None:
    """The client checks the server's answer too: a bad one is 125 with a line."""
    from sandpool.warm.client import run_served

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(path))
        listener.listen(1)
        pid = os.fork()
        if pid == 0:
            conn, _ = listener.accept()
            socket.recv_fds(conn, 1 << 16, 3)
            conn.send(json.dumps({"exit": 10**30}).encode())
            os._exit(0)
        assert run_served(["--", "true"], {"SANDPOOL_SOCKET": str(path)}) == 125
        os.waitpid(pid, 0)
