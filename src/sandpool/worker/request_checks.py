"""What no container can be given, refused before anything is prepared.

A NUL byte ends a C string: in an argument, a variable or a path it would be cut short by the
runtime (gVisor truncates ``--env``) or fail the run late with a bare exit status. The CLI, the
warm server and the API all come through ``Sandpool.run_request``, so one check covers them.
"""

from __future__ import annotations

from collections.abc import Iterator

from sandpool.errors import ContainerStartFailed
from sandpool.worker.request import RunRequest

__all__ = ["refuse_unpassable_text"]


def _texts(request: RunRequest) -> Iterator[tuple[str, str]]:
    for i, arg in enumerate(request.command):
        yield f"argument {i} of the command", arg
    for entry in request.env:
        yield f"--env {entry.partition('=')[0][:64]!r}", entry
    if request.workdir is not None:
        yield "--workdir", request.workdir
    if request.image is not None:
        yield "--image", request.image


def refuse_unpassable_text(request: RunRequest) -> None:
    """ContainerStartFailed (125) naming the first value with a NUL byte."""
    for what, text in _texts(request):
        if "\0" in text:
            raise ContainerStartFailed(f"{what} contains a NUL byte, which no program can "
                                       "receive", hint="remove it")  # fmt: skip
