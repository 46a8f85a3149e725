"""``/v1/sandboxes/{id}/execs``: start a process, stream its output (NDJSON, resumable from
any offset), write and close its stdin, wait for it, kill it; or start it and stream its
output in one request (``POST …/execs/stream``, what the SDK's ``exec`` uses).

The output stream (``GET …/events``) sends each stream's bytes once, from
``stdout_offset``/``stderr_offset`` on: a client whose connection dropped asks again from
the offsets it has and loses nothing (while the exec's output log still holds them; the
first event after a gap says how many bytes were ``dropped``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from sandpool.sandbox import ExecRequest, ExecResult, OutputEvent
from sandpool.service.routes.sandboxes import Access
from sandpool.service.sandbox_backend import SandboxAccess
from sandpool.service.sandbox_schemas import ExecIn, ExecOut
from sandpool.service.schemas import ErrorOut
from sandpool.service.streams import POLL_S, STREAM_THREADS, exec_lines
from sandpool.store import TenantRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}/execs", tags=["execs"])
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404, 409)}
MAX_WAIT_S = 300.0
NDJSON = "application/x-ndjson"


def _out(service: SandboxAccess, sandbox_id: str, exec_id: str,
         result: ExecResult | None) -> ExecOut:  # fmt: skip
    ends = service.manager.exec_offsets(sandbox_id, exec_id)
    done = result is not None
    return ExecOut(id=exec_id, sandbox_id=sandbox_id, done=done,
                   exit_code=result.exit_code if result else None,
                   oom_killed=bool(result and result.oom_killed),
                   timed_out=bool(result and result.timed_out),
                   killed=bool(result and result.killed), error=result.error if result else None,
                   sandbox_ended=result.sandbox_ended if result else None,
                   duration_ms=result.duration_ms if result else None,
                   stdout_bytes=ends["stdout"], stderr_bytes=ends["stderr"],
                   stdout_dropped_bytes=result.stdout_dropped if result else 0,
                   stderr_dropped_bytes=result.stderr_dropped if result else 0)  # fmt: skip


def _request(body: ExecIn) -> ExecRequest:
    return ExecRequest(argv=tuple(body.command),
                       env=tuple(f"{k}={v}" for k, v in body.env.items()), cwd=body.cwd,
                       timeout=body.timeout, user=body.user, stdin=body.stdin)  # fmt: skip


async def _owned(owner: tuple[SandboxAccess, TenantRecord], sandbox_id: str) -> None:
    service, tenant = owner
    await anyio.to_thread.run_sync(service.pool_of, tenant, sandbox_id, limiter=STREAM_THREADS)


def _start(owner: tuple[SandboxAccess, TenantRecord], sandbox_id: str, body: ExecIn) -> str:
    service, tenant = owner
    pool = service.pool_of(tenant, sandbox_id)
    exec_id = service.manager.exec_start(sandbox_id, _request(body))
    service.metrics.execs.started(service.manager, pool, sandbox_id, exec_id)
    return exec_id


@router.post("", status_code=201, responses=_ERRORS)  # type: ignore[arg-type]
def start_exec(sandbox_id: str, body: ExecIn, owner: Access) -> ExecOut:
    """Start ``command`` in the running sandbox (409 when paused or ended); counted in
    ``sandpool_execs_total`` once it ends."""
    return _out(owner[0], sandbox_id, _start(owner, sandbox_id, body), None)


@router.post("/stream", response_class=StreamingResponse,
             responses={200: {"content": {NDJSON: {}}}, **_ERRORS})  # type: ignore[dict-item]  # fmt: skip
async def start_exec_streamed(sandbox_id: str, body: ExecIn, owner: Access,
                              keepalive: Annotated[float, Query(ge=0.1, le=300)] = 10.0,
                              ) -> StreamingResponse:  # fmt: skip
    """Start ``command`` and stream its output in one request: first ``{"type": "start",
    "exec": {…}}`` (the exec as ``POST …/execs`` answers it: its ``id`` resumes a dropped
    stream through ``GET …/execs/{id}/events``), then the lines of that stream. Errors
    before the start (404, 409, 400) are answered as JSON with their status."""
    service = owner[0]

    def started() -> tuple[str, Iterator[OutputEvent | None]]:  # one thread hop for both
        exec_id = _start(owner, sandbox_id, body)
        return exec_id, service.manager.exec_events(sandbox_id, exec_id, 0, 0,
                                                    min(POLL_S, keepalive))  # fmt: skip

    exec_id, events = await anyio.to_thread.run_sync(started, limiter=STREAM_THREADS)
    first = {"type": "start", "exec": _out(service, sandbox_id, exec_id, None).model_dump(
        mode="json", by_alias=True)}  # fmt: skip
    lines = exec_lines(service.manager, sandbox_id, exec_id, events, keepalive, first=first)
    return StreamingResponse(lines, media_type=NDJSON,
                             headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/{exec_id}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_exec(sandbox_id: str, exec_id: str, owner: Access,
                   wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0) -> ExecOut:  # fmt: skip
    """The exec, once it ended or after ``wait`` seconds (at most 300), whichever is first
    (the wait holds a stream thread, not one of the handlers')."""
    service = owner[0]
    await _owned(owner, sandbox_id)
    result = await anyio.to_thread.run_sync(service.manager.exec_wait, sandbox_id, exec_id, wait,
                                            limiter=STREAM_THREADS)  # fmt: skip
    return _out(service, sandbox_id, exec_id, result)


@router.get("/{exec_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {NDJSON: {}}}, **_ERRORS})  # type: ignore[dict-item]  # fmt: skip
async def exec_events(sandbox_id: str, exec_id: str, owner: Access,
                      stdout_offset: Annotated[int, Query(ge=0)] = 0,
                      stderr_offset: Annotated[int, Query(ge=0)] = 0,
                      keepalive: Annotated[float, Query(ge=0.1, le=300)] = 10.0,
                      ) -> StreamingResponse:  # fmt: skip
    """The exec's output as NDJSON lines from these offsets on: ``{"type": "stdout" |
    "stderr", "offset", "dropped", "data" (base64)}``, ``{"type": "keepalive"}`` after
    ``keepalive`` quiet seconds, and last ``{"type": "exit", "exitCode", …}`` once it ended."""
    service, tenant = owner
    poll = min(POLL_S, keepalive)

    def owned_events() -> Iterator[OutputEvent | None]:  # one thread hop for both
        service.pool_of(tenant, sandbox_id)
        return service.manager.exec_events(sandbox_id, exec_id, stdout_offset, stderr_offset,
                                           poll)  # fmt: skip

    events = await anyio.to_thread.run_sync(owned_events, limiter=STREAM_THREADS)
    lines = exec_lines(service.manager, sandbox_id, exec_id, events, keepalive)
    return StreamingResponse(lines, media_type=NDJSON,
                             headers={"Cache-Control": "no-store"})  # fmt: skip


@router.post("/{exec_id}/stdin", status_code=204, responses=_ERRORS)  # type: ignore[arg-type]
async def write_stdin(sandbox_id: str, exec_id: str, request: Request, owner: Access) -> None:
    """Write the request body (raw bytes, up to ``gateway.maxRequestBody``) to the exec's
    stdin (409 unless it was started with ``stdin: true`` and still reads it)."""
    service = owner[0]
    data = await request.body()
    await _owned(owner, sandbox_id)
    await anyio.to_thread.run_sync(service.manager.exec_write, sandbox_id, exec_id, data,
                                   limiter=STREAM_THREADS)  # fmt: skip


@router.post("/{exec_id}/stdin/close", status_code=204, responses=_ERRORS)  # type: ignore[arg-type]
def close_stdin(sandbox_id: str, exec_id: str, owner: Access) -> None:
    """Close the exec's stdin (it reads end of file)."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    service.manager.exec_close_stdin(sandbox_id, exec_id)


@router.post("/{exec_id}/kill", responses=_ERRORS)  # type: ignore[arg-type]
def kill_exec(sandbox_id: str, exec_id: str, owner: Access) -> ExecOut:
    """SIGKILL the exec's process group and answer once it ended (exit code 137)."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    service.manager.exec_kill(sandbox_id, exec_id)
    result = service.manager.exec_wait(sandbox_id, exec_id, 30)
    return _out(service, sandbox_id, exec_id, result)
