"""The one subprocess runner: every runtime CLI call goes through ``run_command`` or ``spawn``.

stdout is returned apart from stderr; a non-zero exit becomes RuntimeCommandFailed (argv, exit
status, stderr); a missing binary RuntimeNotAvailable; a call past its timeout has its whole
process group killed and becomes RuntimeTimeout. Thread-safe: it keeps no state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sandpool.errors import RuntimeCommandFailed, RuntimeNotAvailable, RuntimeTimeout

__all__ = ["DEFAULT_TIMEOUT", "CommandResult", "kill_group", "run_command", "spawn"]

DEFAULT_TIMEOUT = 30.0
FileArg = int | IO[Any] | None


@dataclass(frozen=True)
class CommandResult:
    """What one finished invocation produced."""

    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group ``proc`` leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _not_found(argv: Sequence[str], exc: OSError) -> RuntimeNotAvailable:
    return RuntimeNotAvailable(f"{argv[0]} not found or not executable: {exc.strerror}")


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``argv`` to completion in its own process group and return its output."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise _not_found(argv, exc) from exc
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_group(proc)
        proc.communicate()
        raise RuntimeTimeout(f"{' '.join(argv[:4])}… did not finish within {timeout:g}s") from exc
    result = CommandResult(tuple(argv), proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise RuntimeCommandFailed(argv, proc.returncode, err)
    return result


def spawn(
    argv: Sequence[str],
    *,
    stdin: FileArg = None,
    stdout: FileArg = None,
    stderr: FileArg = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running invocation (e.g. ``runc run``) in its own process group."""
    try:
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise _not_found(argv, exc) from exc
