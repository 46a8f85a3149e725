"""``sandpool run --json``: the container's stdout relayed, so that the JSON starts a line.

The runtime normally writes the container's stdout straight to the caller's descriptor, so
sandpool cannot know whether the program's last byte was a newline (``printf abc``). Under
``--json`` only, the container gets a pipe instead, and a thread copies it to the caller's
descriptor as it comes (streaming is kept), noting the last byte. A reader that has gone
(EPIPE) closes the pipe: the container then sees EPIPE as it would have on the descriptor.
"""

from __future__ import annotations

import os
import threading

from sandpool.stdfds import write_all

__all__ = ["StdoutRelay"]

CHUNK = 65536
FINISH_TIMEOUT = 30.0  # the run has ended: only a stray holder of the pipe could delay EOF


class StdoutRelay:
    """A pipe for the container's stdout, copied to ``target`` until ``finish()``.

    Lifecycle: create before the run, pass ``write_fd`` as the container's stdout, call
    ``finish()`` once the run (and with it every process holding the pipe) has ended."""

    def __init__(self, target: int) -> None:
        self.target = target
        read_fd, self.write_fd = os.pipe()
        self.at_line_start = True
        self._thread = threading.Thread(target=self._copy, args=(read_fd,), daemon=True)
        self._thread.start()

    def _copy(self, read_fd: int) -> None:
        try:
            while chunk := os.read(read_fd, CHUNK):
                if not write_all(self.target, chunk):
                    return  # the reader has gone: so has the container's stdout
                self.at_line_start = chunk.endswith(b"\n")
        finally:
            os.close(read_fd)

    def finish(self) -> bool:
        """Close the write end, copy what is left; whether the output ended a line."""
        os.close(self.write_fd)
        self._thread.join(timeout=FINISH_TIMEOUT)
        return self.at_line_start
