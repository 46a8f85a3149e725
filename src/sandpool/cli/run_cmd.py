"""``sandpool run``: one container, streamed, with the container's exit status (SPEC §4).

The same ``oneshot.execute`` serves both paths: in this process (``run``), or in a warm
``sandpool serve``/``server`` that ``sandpool.cli.entry`` hands the parsed request (``warm.
run_argv``) and its stdio to.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from sandpool.cli.options import Number, Size, config_option
from sandpool.config.quantities import CPU_RANGE, GPU_RANGE, PIDS_RANGE, TIMEOUT_RANGE
from sandpool.errors import EXIT_CANNOT_START, SandpoolError
from sandpool.oneshot.execute import RunArgs, Streams, execute, os_error_line, stdin_fd
from sandpool.sizes import MIN_DISK

if TYPE_CHECKING:  # imported when a run happens: `sandpool --help` does not pay for them
    from sandpool.api import Sandpool

__all__ = ["RunArgs", "execute", "os_error_line", "parse_run_args", "run", "stdin_fd"]

# Signals that stop an in-process run: the container is stopped and removed, then the run
# exits 128 + the signal (130 SIGINT, 129 SIGHUP: its terminal closed, 143 SIGTERM), as a
# served run does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


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
