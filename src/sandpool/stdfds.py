"""Standard descriptors that are closed, and output whose reader has gone.

A process started with fd 0, 1 or 2 closed (``cmd 2>&-``) would hand the next descriptor it
opens (an eventfd, a log file, a socket) to whoever expects a standard one: sandpool would give
its own eventfd to the runtime as the container's stderr. ``fill_closed_std_fds`` puts
``/dev/null`` there first. Output written for a reader that has gone (EPIPE, ``| head``) is the
reader's business: ``write_all`` drops it, and the run's exit status stays what it was.

Standard library only: the thin ``sandpool run`` client imports it.
"""

from __future__ import annotations

import errno
import os
import sys

__all__ = ["fill_closed_std_fds", "is_open", "reopen_std_streams", "write_all"]

STD_FDS = (0, 1, 2)
# Gone readers and descriptors that cannot take output: neither may cost the exit status.
_READER_GONE = (errno.EPIPE, errno.ECONNRESET, errno.EBADF, errno.EINVAL, errno.ENOSPC)


def is_open(fd: int) -> bool:
    """Whether ``fd`` is an open descriptor of this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def fill_closed_std_fds() -> list[int]:
    """Open ``/dev/null`` on each of fds 0, 1 and 2 that is closed; the fds filled."""
    filled = []
    for fd in STD_FDS:
        if is_open(fd):
            continue
        null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: ``fd`` itself
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)  # os.open's are not; a standard fd must be
        filled.append(fd)
    return filled


def reopen_std_streams(fds: list[int]) -> None:
    """Python leaves ``sys.stdin``/``stdout``/``stderr`` None for a std fd closed at its start;
    give the ones over ``fds`` (just filled) a file again."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if fd in fds and getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - lives on


def write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data`` to ``fd``; False (nothing raised) when its reader has gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno in _READER_GONE:
            return False
        raise
    return True
