"""An exec's output log: stdout and stderr chunks in arrival order, bounded, replayable.

The reader thread of an exec appends what the process writes, whether anyone reads or not;
readers (``follow``) replay from any offset per stream and then wait for more, so a slow or
late reader loses nothing while the log holds at most ``limit`` bytes (both streams together).
Past that, the oldest bytes are dropped: a reader that asks for them gets the next kept chunk
with ``dropped`` set to the bytes it missed, and ``dropped()`` counts them per stream.

Thread safe: one writer, any number of readers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from sandpool.sandbox.models import OutputEvent

__all__ = ["DEFAULT_EXEC_OUTPUT_LIMIT", "STREAMS", "OutputLog"]

DEFAULT_EXEC_OUTPUT_LIMIT = 8 << 20  # per exec, both streams together
STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class _Chunk:
    seq: int
    stream: str
    offset: int
    data: bytes


class OutputLog:
    """The kept output of one exec (see the module docstring)."""

    def __init__(self, limit: int = DEFAULT_EXEC_OUTPUT_LIMIT) -> None:
        self.limit = max(1, limit)
        self._cond = threading.Condition()
        self._chunks: deque[_Chunk] = deque()
        self._next_seq = 0
        self._size = 0
        self._ends = dict.fromkeys(STREAMS, 0)
        self._dropped = dict.fromkeys(STREAMS, 0)
        self._closed = False

    def append(self, stream: str, data: bytes) -> None:
        """Add what ``stream`` produced; drop the oldest bytes past the limit."""
        if not data:
            return
        with self._cond:
            self._chunks.append(_Chunk(self._next_seq, stream, self._ends[stream], data))
            self._next_seq += 1
            self._ends[stream] += len(data)
            self._size += len(data)
            self._trim()
            self._cond.notify_all()

    def _trim(self) -> None:
        while self._size > self.limit:
            first = self._chunks[0]
            excess = self._size - self.limit
            if excess >= len(first.data):
                self._chunks.popleft()
                cut = len(first.data)
            else:  # keep the chunk's tail (a new chunk: readers may hold the old one)
                cut = excess
                self._chunks[0] = _Chunk(first.seq, first.stream, first.offset + cut,
                                         first.data[cut:])  # fmt: skip
            self._size -= cut
            self._dropped[first.stream] += cut

    def close(self) -> None:
        """No more output: readers finish once they have read everything kept."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def dropped(self) -> dict[str, int]:
        """Bytes per stream that the bound dropped so far."""
        with self._cond:
            return dict(self._dropped)

    def ends(self) -> dict[str, int]:
        """Bytes per stream written so far (the offset of the next byte)."""
        with self._cond:
            return dict(self._ends)

    def contents(self) -> tuple[bytes, bytes]:
        """All kept stdout and all kept stderr."""
        with self._cond:
            chunks = list(self._chunks)
        return tuple(  # type: ignore[return-value]
            b"".join(c.data for c in chunks if c.stream == s) for s in STREAMS
        )

    def _wait_after(self, seq: int, timeout: float | None) -> tuple[list[_Chunk], bool]:
        """Kept chunks from ``seq`` on (waiting for one unless closed) and whether closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._next_seq > seq, timeout)
            first = self._chunks[0].seq if self._chunks else self._next_seq
            start = max(0, seq - first)
            return [self._chunks[i] for i in range(start, len(self._chunks))], self._closed

    def follow(self, stdout_from: int = 0, stderr_from: int = 0,
               poll: float | None = None) -> Iterator[OutputEvent | None]:  # fmt: skip
        """Events from these offsets on, until the log is closed and read; with ``poll``,
        yields None after that many quiet seconds (a caller's chance to send a keepalive or
        to give up)."""
        cursor = {"stdout": stdout_from, "stderr": stderr_from}
        seq = 0
        while True:
            chunks, closed = self._wait_after(seq, poll)
            if not chunks and not closed:
                yield None
            for chunk in chunks:
                seq = chunk.seq + 1
                event = _event(chunk, cursor)
                if event is not None:
                    yield event
            if closed and not chunks:
                return


def _event(chunk: _Chunk, cursor: dict[str, int]) -> OutputEvent | None:
    """The part of ``chunk`` past the reader's cursor of its stream (advancing it)."""
    start = cursor[chunk.stream]
    end = chunk.offset + len(chunk.data)
    if end <= start:
        return None
    begin = max(start, chunk.offset)
    cursor[chunk.stream] = end
    return OutputEvent(chunk.stream, begin, chunk.data[begin - chunk.offset :],
                       dropped=max(0, chunk.offset - start))  # fmt: skip
