"""``wait_exit``: wait for a child process to exit, with a timeout, woken by the exit itself.

``subprocess.Popen.wait(timeout)`` polls: it sleeps 1, 2, 4 … 50 ms between ``waitpid``
calls, so a process that exits just after a look is seen up to 50 ms late (a 0.1 s slice
of it up to ~37 ms). ``wait_exit`` sleeps in ``poll`` on a pidfd
(``pidfd_open``, Linux 5.3+), which the kernel makes readable as the process exits; where
there is no pidfd it falls back to ``Popen.wait``. Without a timeout ``Popen.wait`` already
blocks in ``waitpid``, and is used as it is.
"""

from __future__ import annotations

import math
import os
import select
import subprocess
from typing import Any

__all__ = ["wait_exit"]


def wait_exit(proc: subprocess.Popen[Any], timeout: float | None) -> int:
    """``proc``'s return code once it has exited; ``subprocess.TimeoutExpired`` if it has
    not within ``timeout`` seconds (as ``Popen.wait``)."""
    if timeout is None or proc.returncode is not None:
        return proc.wait(timeout)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # no pidfd here (ENOSYS), or reaped by another thread (ESRCH)
        return proc.wait(timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(math.ceil(max(0.0, timeout) * 1000)):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()  # it has exited: reaps it at once
