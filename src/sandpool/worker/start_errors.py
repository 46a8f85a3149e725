"""What the runtime said when a container failed: its own message, read from its logs, and
the known start errors translated into a line that names the setting to change.

runc writes one JSON object per line to ``--log``; runsc writes the objects of ``run``, the
gofer and the sandbox one after the other with no newline between them, so the log is read
as a stream of objects. The first error is the cause (the later ones are runsc noticing that
its sandbox or gofer died). A Sentry panic goes to neither: it is in ``--panic-log``.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sandpool.worker.request import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND

__all__ = [
    "StartContext",
    "explain",
    "explain_death",
    "first_error",
    "sandbox_death",
    "start_failure",
]

_PANIC_MARKERS = ("panic:", "fatal error:")
# Go's runtime says why a thread could not be made ("errno=11": EAGAIN, the pids limit).
_GO_THREAD_FAILURE = "runtime: failed to create new OS thread"
_NOT_FOUND_MARKERS = ("executable file not found", "error finding executable", "no such file")


@dataclass(frozen=True)
class StartContext:
    """The settings a start error may be about, as the user wrote them."""

    runtime: str
    memory: str
    pids: int
    cwd: str
    host_pids: int = 0


# (pattern in the runtime's message, what to say instead); the first match wins.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(mkdir|creating working directory).*not a directory"),
     "the working directory {cwd!r} is not a directory in the container"),
    (re.compile(r"[Cc]wd must be an absolute path"),
     "the working directory {cwd!r} is not an absolute path"),
    (re.compile(r"can't get final child's PID from pipe|read init-p|newosproc|"
                r"resource temporarily unavailable"),
     "{runtime} could not create the container's processes: the pids limit ({pids}) or the "
     "memory limit ({memory}) is too small for it to start"),
    (re.compile(r"mandatory cgroup controller .* is missing"),
     "{runtime} needs that cgroup controller at the cgroup root sandpool sees, and only the "
     "cgroup above it can give it: enable it there (cgroup.subtree_control; the kubelet "
     "gives pods cpuset, cpu, io, memory and pids on cgroup v2 nodes), or use a runc pool"),
)  # fmt: skip


def first_error(log_file: Path) -> str | None:
    """The first error the runtime logged to its JSON ``--log`` file, if any."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return None
    decoder, at = json.JSONDecoder(), 0
    while (at := _skip_space(text, at)) < len(text):
        try:
            entry, at = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("\n", at) + 1 or len(text)  # a line that is not JSON: skip it
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip() or None
    return None


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def sandbox_death(panic_log: Path) -> str | None:
    """The Sentry's or gofer's own last words (``panic: …``, ``fatal error: …``) from
    ``--panic-log``, if the sandbox died."""
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in panic_log.read_text(errors="replace").splitlines()]
        cause = next((ln for ln in lines if ln.startswith(_GO_THREAD_FAILURE)), None)
        for line in lines:
            if line.startswith(_PANIC_MARKERS):
                return f"{line} ({cause})" if cause else line
    return None


def explain_death(death: str, context: StartContext) -> str:
    """A sandbox that died mid-run, with its own last words and, when it ran out of host
    pids, which limit that was."""
    line = f"the gVisor sandbox died: {death}"
    if "resource temporarily unavailable" in death or "errno=11" in death:
        line += (f" (its host cgroup reached {context.host_pids} pids, the host limit for "
                 f"--pids {context.pids}: processes under other uids each get the guest "
                 "limit)")  # fmt: skip
    return line


def explain(message: str, context: StartContext) -> str:
    """``message`` with, for a known start error, what it means in the user's settings."""
    for pattern, meaning in _RULES:
        if pattern.search(message):
            return meaning.format(**vars(context)) + f" ({context.runtime}: {message})"
    return message


def start_failure(message: str, context: StartContext, *, oom: bool) -> tuple[int | None, str]:
    """What a failed start means: 127/126 for a command the runtime could not find or run
    (the command's status, as a shell gives it), else None and the line to report (``oom``:
    the start itself ran out of memory)."""
    lowered = message.lower()
    if oom:
        return None, (f"the memory limit ({context.memory}) is too small for {context.runtime} "
                      "to start the container: it ran out of memory while starting")  # fmt: skip
    if any(marker in lowered for marker in _NOT_FOUND_MARKERS):
        return EXIT_NOT_FOUND, message
    if "permission denied" in lowered:
        return EXIT_NOT_EXECUTABLE, message
    return None, explain(message, context)
