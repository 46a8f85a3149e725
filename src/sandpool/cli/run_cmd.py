"""``sandpool run``: one container, streamed, with the container's exit status (SPEC §4).

The same ``execute`` serves both paths: in this process (``run``), or in a warm
``sandpool serve`` that ``sandpool.cli.entry`` hands the command line and stdio to.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from sandpool.cli.options import Number, Size, config_option
from sandpool.config.quantities import CPU_RANGE, GPU_RANGE, PIDS_RANGE, TIMEOUT_RANGE
from sandpool.errors import EXIT_CANNOT_START, ContainerStartFailed, SandpoolError
from sandpool.sizes import MIN_DISK
from sandpool.stdfds import write_all

if TYPE_CHECKING:  # imported when a run happens: `sandpool --help` does not pay for them
    from sandpool.api import Sandpool
    from sandpool.worker.container import ContainerRun

__all__ = ["RunArgs", "execute", "os_error_line", "parse_run_args", "run", "stdin_fd"]

# Signals that stop an in-process run: the container is stopped and removed, then the run
# exits 128 + the signal (130 SIGINT, 129 SIGHUP: its terminal closed, 143 SIGTERM), as a
# served run does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
# "not executable" and "not found" are the runtime's own error line (from its log), which it
# has already written on the run's stderr: sandpool does not print it a second time.
RUNTIME_SAID_IT = (126, 127)


class Terminated(Exception):
    """A stop signal arrived while a container ran; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunUsageError(click.UsageError):
    """A bad flag of ``sandpool run``: the container could not be started (125)."""

    exit_code = EXIT_CANNOT_START


class RunCommand(click.Command):
    """Bad flags exit 125 (could not start), not click's usual 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise RunUsageError(exc.format_message(), exc.ctx) from exc


@dataclass(frozen=True)
class RunArgs:
    """The parsed flags and command of one ``sandpool run``."""

    config_files: tuple[str, ...]
    pool: str
    image: str | None
    cpu: float | None
    memory: str | None
    pids: int | None
    timeout: float | None
    env: tuple[str, ...]
    workdir: str | None
    gpus: int
    disk: str | None
    network: str | None
    allow: tuple[str, ...]
    as_json: bool
    command: tuple[str, ...]


@dataclass(frozen=True)
class Streams:
    """Where one ``sandpool run`` reads and writes: the caller's fds. sandpool's own lines go
    to them too; a reader that has gone (EPIPE) never costs the exit status (``stdfds``)."""

    stdin: int | None
    stdout: int
    stderr: int

    def say(self, text: str) -> None:
        """One message (a line, or a few) on stderr."""
        write_all(self.stderr, (text.rstrip("\n") + "\n").encode())

    def emit(self, line: str, *, at_line_start: bool = True) -> None:
        """One line on stdout, starting a line of its own."""
        write_all(self.stdout, ("" if at_line_start else "\n").encode() + line.encode() + b"\n")


def _env(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if "=" not in value or value.startswith("="):
            raise click.BadParameter(f"{value!r} is not K=V")
    return values


def check_allow(ctx: click.Context, param: click.Parameter,
                values: tuple[str, ...]) -> tuple[str, ...]:  # fmt: skip
    """``--allow``'s callback: each entry must parse (``sandpool.network.policy``)."""
    from sandpool.network.policy import parse_allow

    for value in values:
        try:
            parse_allow(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """Unwind the run (its clean-up runs on the way out); a second signal (a closing terminal
    sends HUP, then the shell TERM) is ignored so that it cannot cut that clean-up short."""
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


def stdin_fd(fd: int) -> int | None:
    """Pass stdin through when it is not a terminal (``echo hi | sandpool run -- cat``)."""
    try:
        return None if os.isatty(fd) else fd
    except OSError:
        return None


def os_error_line(error: OSError, state_dir: str | None) -> str:
    """One line for an OSError on the run path, naming the path and the fix."""
    path = error.filename if error.filename is not None else "(no path)"
    line = f"sandpool: cannot use {path}: {error.strerror or error}"
    if state_dir is not None and str(path).startswith(state_dir):
        line += f" (worker.stateDir {state_dir} must be a writable directory on a local disk)"
    return line


def _repeats_the_runtime(error: SandpoolError) -> bool:
    """Whether ``error`` only repeats the runtime's own line, which the runtime has already
    written on the run's stderr (runc and runsc print the error they log, and the run's stderr
    is theirs): sandpool then prints nothing more (one line, not two)."""
    if not isinstance(error, ContainerStartFailed) or not error.runtime_said:
        return False
    return not error.hint and error.message.endswith(error.runtime_said)


def execute(args: RunArgs, sandpool: Sandpool, streams: Streams,
            on_container: Callable[[ContainerRun], None] | None = None) -> int:  # fmt: skip
    """Run ``args`` with ``sandpool``; report on ``streams``; the exit status."""
    from sandpool.cli.stdout_relay import StdoutRelay
    from sandpool.worker.container import Stdio
    from sandpool.worker.request import RunRequest

    request = RunRequest(args.command, args.image, args.cpu, args.memory, args.pids,
                         args.timeout, args.env, args.workdir, args.gpus,
                         disk=args.disk, network=args.network,
                         allow=args.allow or None)  # fmt: skip
    relay = StdoutRelay(streams.stdout) if args.as_json else None
    stdio = Stdio(streams.stdin, relay.write_fd if relay else streams.stdout, streams.stderr)
    try:
        result = sandpool.run_request(args.pool, request, stdio, on_container=on_container)
    except SandpoolError as error:
        if not _repeats_the_runtime(error):
            streams.say(f"{type(error).__name__}: {error}")
        return EXIT_CANNOT_START
    except OSError as error:  # the host refused a file sandpool needs (e.g. the state dir)
        streams.say(os_error_line(error, sandpool.config.state_dir))
        return EXIT_CANNOT_START
    finally:
        at_line_start = relay.finish() if relay else True
    if args.as_json:
        streams.emit(json.dumps(result.to_json()), at_line_start=at_line_start)
    elif result.error and result.exit_code not in RUNTIME_SAID_IT:
        streams.say(f"sandpool: {result.error}")
    return int(result.exit_code)


@click.command(cls=RunCommand, context_settings={"ignore_unknown_options": False})
@config_option
@click.option("--pool", default="default", show_default=True, help="Worker pool to run in.")
@click.option("--image", default=None, help="Image reference (default: the default image).")
@click.option("--cpu", type=Number(CPU_RANGE, "cores"), default=None, help="CPU cores.")
@click.option("--memory", type=Size(), default=None, help="Memory limit, e.g. 256Mi.")
@click.option("--pids", type=Number(PIDS_RANGE, "processes", whole=True), default=None,
              help="Process limit.")  # fmt: skip
@click.option("--timeout", type=Number(TIMEOUT_RANGE, "seconds"), default=None, help="Seconds.")
@click.option("--env", "env", multiple=True, callback=_env, metavar="K=V", help="Repeatable.")
@click.option("--workdir", default=None, help="Working directory inside the container.")
@click.option("--gpu", "gpus", type=Number(GPU_RANGE, "GPUs", whole=True), default=0,
              help="GPUs to attach.")  # fmt: skip
@click.option("--disk", type=Size(MIN_DISK), default=None,
              help="Writable layer size limit, e.g. 256Mi (at least 1Mi).")  # fmt: skip
@click.option(
    "--network",
    type=click.Choice(["none", "allow", "open"]),
    default=None,
    help="Network policy (default: the pool's containerDefaults.network).",
)
@click.option(
    "--allow",
    multiple=True,
    callback=check_allow,
    metavar="CIDR|HOST:PORT|DOMAIN",
    help="Allowed destination (repeatable; implies --network allow).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary after the run.")
@click.argument("command", nargs=-1, required=False)
def run(**params: Any) -> None:
    """Run COMMAND in a new container of POOL; exit with its status (137 OOM, 124 timeout,
    125 could not start, 126 not executable, 127 not found). With `sandpool serve` running,
    the run is handed to it (same behaviour, no start-up cost)."""
    from sandpool.api import Sandpool
    from sandpool.config.cache import load_resolved
    from sandpool.worker.recovery import reconcile_dead_owners

    args = RunArgs(**params)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop_signal)
    streams = Streams(stdin_fd(0), 1, 2)
    sp: Sandpool | None = None
    try:
        sp = Sandpool(load_resolved(args.config_files))  # no YAML/pydantic when unchanged
        reconcile_dead_owners(sp.config)
        code = execute(args, sp, streams)
    except SandpoolError as error:
        streams.say(f"{type(error).__name__}: {error}")
        sys.exit(EXIT_CANNOT_START)
    except OSError as error:  # before the run: reconciling the state dir
        streams.say(os_error_line(error, sp.config.state_dir if sp else None))
        sys.exit(EXIT_CANNOT_START)
    except Terminated as stop:
        sys.exit(128 + stop.signum)
    sys.exit(code)


def parse_run_args(argv: list[str]) -> RunArgs:
    """``sandpool run``'s flags parsed as the command does (RunUsageError when bad)."""
    ctx = run.make_context("sandpool run", list(argv))
    return RunArgs(**ctx.params)
