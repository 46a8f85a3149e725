"""Streams between the event loop and the blocking sandbox calls, none of which blocks the
loop or holds more than one chunk in memory:

- exec output as NDJSON lines (``exec_lines``): one JSON object per line, ``stdout`` and
  ``stderr`` events with the stream's byte ``offset`` and the bytes in base64 (output is
  bytes, not always UTF-8, and a chunk may end inside a character: base64 keeps offsets and
  content exact), a ``keepalive`` line after ``keepalive`` quiet seconds, and one ``exit``
  line once the process has ended and all its output was sent;
- a download (``chunks_of``): a file's chunks from its reading thread;
- an upload (``body_source``): the request body, as it comes, for the writing thread.

Blocking steps run in threads of ``STREAM_THREADS`` (their own limiter: a thousand quiet
streams do not starve the handlers' thread pool).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from sandpool.errors import PayloadTooLarge
from sandpool.sandbox import ExecResult, OutputEvent, SandboxManager
from sandpool.sizes import format_size

__all__ = [
    "STREAM_THREADS",
    "body_source",
    "chunks_of",
    "exec_lines",
    "first_chunk",
    "upload_too_large",
]

STREAM_THREADS = anyio.CapacityLimiter(1024)
POLL_S = 1.0  # how long one blocking wait for output lasts (the stream notices a client gone)
_END: Any = object()


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


async def _blocking(function: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(function, *args, limiter=STREAM_THREADS)


async def exec_lines(manager: SandboxManager, sandbox_id: str, exec_id: str,
                     events: Iterator[OutputEvent | None], keepalive: float,
                     first: dict[str, Any] | None = None) -> AsyncIterator[bytes]:  # fmt: skip
    """The NDJSON lines of one exec's output from ``events`` on (see the module docstring),
    after ``first`` if given."""
    quiet_since = time.monotonic()
    wait = partial(manager.exec_wait, sandbox_id, exec_id, POLL_S)
    try:
        if first is not None:
            yield _line(first)
        while not isinstance(item := await _blocking(_step, events, wait), _Ended):
            if item is not None:
                yield _line(item.to_json())
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= keepalive:
                yield _line({"type": "keepalive"})
                quiet_since = time.monotonic()
        result = item.result
        while result is None:  # the output ends just before the process does
            result = await _blocking(wait)
        yield _line({"type": "exit", **result.to_json()})
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class _Ended:
    """The output has ended; how the process did, if it has (else None: wait on)."""

    result: ExecResult | None


def _step(events: Iterator[OutputEvent | None],
          wait: Callable[[], ExecResult | None]) -> OutputEvent | _Ended | None:  # fmt: skip
    """The next event (None: quiet for a poll); once the output has ended, the result too,
    in the same thread hop (a short command's whole stream takes two hops with its start)."""
    event = next(events, _END)
    return _Ended(wait()) if event is _END else event


async def first_chunk(chunks: Iterator[bytes]) -> bytes | None:
    """The first chunk of a file (its errors raise here, before an answer has started)."""
    chunk: bytes | None = await _blocking(next, chunks, None)
    return chunk


async def chunks_of(first: bytes | None, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``first`` and then the rest of ``chunks``, each read in a thread."""
    try:
        if first is not None:
            yield first
            while (chunk := await _blocking(next, chunks, None)) is not None:
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await _blocking(close)


def body_source(body: AsyncIterator[bytes], limit: int) -> Iterator[bytes]:
    """The request ``body`` as a blocking iterator for a worker thread (started by anyio),
    each chunk fetched from the event loop when the writer wants it; PayloadTooLarge past
    ``limit`` bytes."""
    total = 0
    while True:
        chunk = anyio.from_thread.run(_next_chunk, body)
        if chunk is None:
            return
        total += len(chunk)
        if total > limit:
            raise upload_too_large(limit)
        yield chunk


def upload_too_large(limit: int) -> PayloadTooLarge:
    """The error of an upload over ``limit`` bytes."""
    return PayloadTooLarge(f"the upload is over {format_size(limit)}",
                           hint="gateway.maxUploadSize in the server's configuration")  # fmt: skip


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    async for chunk in body:
        if chunk:
            return chunk
    return None
