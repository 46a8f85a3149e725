"""``execute``: run one ``RunArgs`` with a ``Sandpool`` and report on the caller's fds, the
same in the CLI's own process and in a server (``warm.server``) that holds the client's fds."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandpool.errors import EXIT_CANNOT_START, ContainerStartFailed, SandpoolError
from sandpool.stdfds import write_all

if TYPE_CHECKING:  # imported when a run happens: `sandpool --help` does not pay for them
    from sandpool.api import Sandpool
    from sandpool.worker.handle import RunHandle

__all__ = ["RunArgs", "Streams", "execute", "os_error_line", "stdin_fd"]

# "not executable" and "not found" are the runtime's own error line (from its log), which it
# has already written on the run's stderr: sandpool does not print it a second time.
RUNTIME_SAID_IT = (126, 127)


@dataclass(frozen=True)
class RunArgs:
    """The parsed flags and command of one ``sandpool run`` (checked: by click in the CLI,
    by ``warm.run_message`` in a server)."""

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
            on_container: Callable[[RunHandle], None] | None = None) -> int:  # fmt: skip
    """Run ``args`` with ``sandpool``; report on ``streams``; the exit status."""
    from sandpool.oneshot.stdout_relay import StdoutRelay
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
