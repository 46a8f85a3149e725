"""Copying a container's output into a regular file on gVisor's behalf.

gVisor keeps its own file offset for a host file given as stdout/stderr and writes with
``pwrite``, so output written to a shared regular file (a shell redirect, a CI log) lands at the
wrong place and is overwritten by the caller's later writes. Pipes and terminals are not
affected. For a gVisor container whose stdout or stderr is a regular file, sandpool hands the
runtime a pipe and copies from it with ``write(2)`` on the caller's descriptor, which appends at
the shared offset, as it comes.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from typing import IO, Any

__all__ = ["copy_to_fd", "is_regular_file"]

CHUNK = 65536


def _fd_of(target: Any) -> int | None:
    if isinstance(target, int) and target >= 0:
        return target
    fileno = getattr(target, "fileno", None)
    if callable(fileno):
        try:
            value = fileno()
        except (OSError, ValueError):
            return None
        return value if isinstance(value, int) else None
    return None


def is_regular_file(target: Any) -> int | None:
    """The descriptor of ``target`` if it is a regular file, else None (pipe, tty, PIPE…)."""
    if target in (None, subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT):
        return None
    fd = _fd_of(target)
    if fd is None:
        return None
    try:
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def copy_to_fd(source: IO[bytes], fd: int) -> threading.Thread:
    """Start a thread that copies ``source`` into ``fd`` until EOF, then closes ``source``."""

    def pump() -> None:
        try:
            while chunk := os.read(source.fileno(), CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            source.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread
