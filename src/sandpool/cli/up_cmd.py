"""``sandpool up``: a whole deployment on this machine, in the foreground, for trying the
scale-out out: ``redis-server`` on a unix socket under ``<stateDir>/up/`` (no TCP port, no
persistence: the dispatch's live state only), a gateway (``sandpool server --redis
--local-worker``, which starts one ``sandpool worker`` of each configured pool) with a worker
token made for this run. SIGTERM or Ctrl-C stops the gateway (which stops its workers: they
terminate their sandboxes), then Redis; nothing is left running."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from sandpool.cli.options import config_option, load
from sandpool.errors import DeploymentError

__all__ = ["up"]

REDIS_START_TIMEOUT = 20.0
STOP_TIMEOUT = 180.0  # the gateway waits for its workers, which terminate their sandboxes


def _ping(socket_path: Path) -> bool:
    import redis

    with contextlib.suppress(redis.RedisError, OSError):
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2).ping())
    return False


def redis_binary() -> str:
    """Where ``redis-server`` is; DeploymentError naming it if it is not on PATH."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise DeploymentError(
            "redis-server not found on PATH",
            hint="install Debian's redis-server (./setup.sh does), or run the README's "
            "scale-out commands with your own Redis",
        )
    return binary


def start_redis(binary: str, directory: Path) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``directory/redis.sock``, answering PING; DeploymentError if it
    fails, or another ``sandpool up`` holds the socket."""
    sock = directory / "redis.sock"
    if _ping(sock):
        raise DeploymentError(f"a Redis already answers on {sock}: another `sandpool up` "
                              "runs with this state dir", hint="stop it first")  # fmt: skip
    sock.unlink(missing_ok=True)
    argv = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(directory), "--save", "", "--appendonly", "no",
            "--logfile", str(directory / "redis.log")]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while not _ping(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, 5)
            raise DeploymentError(f"redis-server did not start (exit {proc.returncode})",
                                  hint=f"see {directory / 'redis.log'}")  # fmt: skip
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def server_argv(redis_url: str, passed: list[str]) -> list[str]:
    """``sandpool server --redis URL --local-worker`` with the options ``up`` passes on."""
    return [sys.executable, "-c", "from sandpool.cli.entry import main; main()", "server",
            "--redis", redis_url, "--local-worker", *passed]  # fmt: skip


def _passed(listen: str | None, database: str | None, socket_path: str | None,
            no_socket: bool, config_files: tuple[str, ...]) -> list[str]:  # fmt: skip
    argv = [*(["--listen", listen] if listen else []),
            *(["--database", database] if database else []),
            *(["--socket", socket_path] if socket_path else []),
            *(["--no-socket"] if no_socket else [])]  # fmt: skip
    return argv + [x for f in config_files for x in ("-c", f)]


def run_gateway(argv: list[str], env: dict[str, str]) -> int:
    """Run the gateway until it exits; a SIGTERM or SIGINT here is passed on to it as SIGTERM
    (it runs in a session of its own: a terminal's Ctrl-C reaches only ``up``)."""
    gateway = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return gateway.wait()
    finally:
        if gateway.poll() is None:  # up itself failed: do not leave the gateway behind
            stop(gateway, STOP_TIMEOUT)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@click.command()
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="The gateway's address (default: gateway.http, 127.0.0.1:1994).",
)
@click.option(
    "--database",
    default=None,
    metavar="URL",
    envvar="SANDPOOL_DATABASE",
    help="The gateway's database (default: SQLite in the state dir).",
)
@click.option(
    "--socket",
    "socket_path",
    default=None,
    metavar="PATH",
    help="The gateway's serve socket (see `sandpool server --socket`).",
)
@click.option("--no-socket", is_flag=True, help="The gateway serves HTTP only.")
@config_option
def up(listen: str | None, database: str | None, socket_path: str | None, no_socket: bool,
       config_files: tuple[str, ...]) -> None:  # fmt: skip
    """Bring up a deployment on this machine in the foreground: redis-server (on a unix
    socket under <stateDir>/up/), a gateway and one worker of each configured pool. The
    gateway prints its URL and, at its first start, the admin key. Ctrl-C or SIGTERM stops
    everything (the workers terminate their sandboxes)."""
    loaded = load(config_files)
    binary = redis_binary()
    directory = Path(loaded.resolved.state_dir) / "up"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    redis = start_redis(binary, directory)
    redis_url = f"unix://{directory / 'redis.sock'}"
    env = {**os.environ}
    env.setdefault("SANDPOOL_WORKER_TOKEN", secrets.token_urlsafe(24))
    pools = ", ".join(loaded.resolved.pools)
    click.echo(f"sandpool up: Redis at {redis_url} (pid {redis.pid}); starting a gateway and "
               f"a worker of each pool ({pools}); Ctrl-C stops all", err=True)  # fmt: skip
    try:
        passed = _passed(listen, database, socket_path, no_socket, config_files)
        code = run_gateway(server_argv(redis_url, passed), env)
    finally:
        stop(redis, 10)
        (directory / "redis.sock").unlink(missing_ok=True)
    click.echo(f"sandpool up: stopped (gateway exit {code})", err=True)
    sys.exit(code)
