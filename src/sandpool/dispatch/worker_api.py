"""A worker's internal HTTP endpoint: the gateway reaches the sandboxes this worker holds
through it (exec streams, file streams, state, terminate). Every route but the probes needs
the worker token (``Authorization: Bearer $SANDPOOL_WORKER_TOKEN``); the gateway proxies the
public API's requests here (``dispatch.proxy``).

    GET    /healthz, /readyz                              probes (no token)
    GET    /metrics                                       Prometheus: its sandboxes, warm
                                                          pools and execs (no token)
    GET    /internal/v1/sandboxes/{id}                    its state (JSON)
    DELETE /internal/v1/sandboxes/{id}                    terminate it; its final state
    POST   /internal/v1/sandboxes/{id}/exec               run a command: NDJSON, one output
                                                          event a line, then the result
    POST   /internal/v1/sandboxes/{id}/execs              start one: {"execId"}
    GET    /internal/v1/sandboxes/{id}/execs/{exec}/events?stdoutFrom=&stderrFrom=
                                                          its output from these offsets (a
                                                          reconnecting client resumes), then
                                                          the result; keepalives when quiet
    PUT    /internal/v1/sandboxes/{id}/files?path=&mode=  write a file from the streamed body
    GET    /internal/v1/sandboxes/{id}/files?path=        read a file, streamed

Errors are ``{"code", "message", "hint"}`` with the service's statuses.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio.from_thread
import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from sandpool.errors import (
    SandboxFileError,
    SandboxNotFound,
    SandboxStateError,
    SandpoolError,
    Unauthenticated,
)
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import ExecRequest, ExecResult
from sandpool.service.metrics import CONTENT_TYPE_LATEST, ServiceMetrics

__all__ = ["bearer_check", "create_worker_app", "error_answer"]

PREFIX = "/internal/v1"
KEEPALIVE = 5.0  # seconds of quiet before an exec stream sends a keepalive line
_STATUS = ((SandboxNotFound, 404, "not_found"), (SandboxStateError, 409, "conflict"),
           (SandboxFileError, 400, "invalid_request"))  # fmt: skip


def _status(error: SandpoolError) -> tuple[int, dict[str, Any]]:
    status, code = 500, "internal"
    for kind, kind_status, kind_code in _STATUS:
        if isinstance(error, kind):
            status, code = kind_status, kind_code
            break
    if isinstance(error, Unauthenticated):
        status, code = 401, "unauthenticated"
    return status, {"code": code, "message": error.message, "hint": error.hint}


def error_answer(error: SandpoolError) -> JSONResponse:
    """A core error as the service states it."""
    status, body = _status(error)
    return JSONResponse(body, status_code=status)


def bearer_check(token: str) -> Callable[[Request], None]:
    """A dependency that refuses a request without ``Bearer <token>`` (constant time)."""
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not token or not hmac.compare_digest(given, expected):
            raise Unauthenticated(
                "the worker token is missing or wrong",
                hint="send Authorization: Bearer $SANDPOOL_WORKER_TOKEN",
            )

    return check


def _exec_request(body: dict[str, Any]) -> tuple[ExecRequest, bytes | None]:
    argv = body.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SandboxStateError("argv must be a non-empty list of strings")
    stdin = body.get("stdin")
    request = ExecRequest(tuple(argv), tuple(str(e) for e in body.get("env") or ()),
                          body.get("cwd"), body.get("timeout"), body.get("user"))  # fmt: skip
    return request, None if stdin is None else base64.b64decode(stdin)


def _ndjson(events: Iterator[Any]) -> Iterator[bytes]:
    """One JSON object a line; an error once the answer started is the last line
    (``{"type": "error", "code", "message"}``), never a cut connection."""
    try:
        for event in events:
            line = event.to_json()
            if isinstance(event, ExecResult):
                line = {"type": "result", **line}
            yield json.dumps(line).encode() + b"\n"
    except SandpoolError as exc:
        body = _status(exc)[1]
        yield json.dumps({"type": "error", **body}).encode() + b"\n"


def _routes(app: FastAPI, manager: SandboxManager) -> None:
    @app.get(PREFIX + "/sandboxes/{sandbox_id}")
    def get_sandbox(sandbox_id: str) -> dict[str, Any]:
        return manager.get(sandbox_id).to_json()

    @app.delete(PREFIX + "/sandboxes/{sandbox_id}")
    def terminate(sandbox_id: str) -> dict[str, Any]:
        return manager.terminate(sandbox_id).to_json()

    @app.post(PREFIX + "/sandboxes/{sandbox_id}/exec")
    async def run_exec(sandbox_id: str, request: Request) -> Response:
        exec_request, stdin = _exec_request(await request.json())
        if stdin is not None:  # run to the end with the input, then stream what it wrote
            result = await anyio.to_thread.run_sync(manager.exec, sandbox_id, exec_request, stdin)
            return StreamingResponse(_ndjson(iter(_with_output(result))),
                                     media_type="application/x-ndjson")  # fmt: skip
        manager.get(sandbox_id)  # 404/409 now, not mid-stream
        events = manager.stream(sandbox_id, exec_request)
        return StreamingResponse(_ndjson(events), media_type="application/x-ndjson")

    @app.post(PREFIX + "/sandboxes/{sandbox_id}/execs")
    async def start_exec(sandbox_id: str, request: Request) -> dict[str, str]:
        exec_request, _ = _exec_request(await request.json())
        exec_id = await anyio.to_thread.run_sync(manager.exec_start, sandbox_id, exec_request)
        return {"execId": exec_id}

    @app.get(PREFIX + "/sandboxes/{sandbox_id}/execs/{exec_id}/events")
    def exec_events(sandbox_id: str, exec_id: str, stdoutFrom: int = 0,
                    stderrFrom: int = 0) -> Response:  # fmt: skip
        events = manager.exec_events(sandbox_id, exec_id, stdoutFrom, stderrFrom, KEEPALIVE)
        return StreamingResponse(_ndjson(_then_result(manager, sandbox_id, exec_id, events)),
                                 media_type="application/x-ndjson")  # fmt: skip

    @app.put(PREFIX + "/sandboxes/{sandbox_id}/files")
    async def write_file(sandbox_id: str, path: str, request: Request,
                         mode: int = 0o644) -> dict[str, int]:  # fmt: skip
        stream = request.stream()

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    yield anyio.from_thread.run(_next, stream)
                except StopAsyncIteration:
                    return

        written = await anyio.to_thread.run_sync(
            lambda: manager.write_file(sandbox_id, path, chunks(), mode))  # fmt: skip
        return {"bytes": written}

    @app.get(PREFIX + "/sandboxes/{sandbox_id}/files")
    def read_file(sandbox_id: str, path: str) -> Response:
        chunks = manager.read_file(sandbox_id, path)
        first = next(chunks, b"")  # errors (no such file) before the answer starts
        return StreamingResponse(_chain(first, chunks), media_type="application/octet-stream")


class _Keepalive:
    def to_json(self) -> dict[str, str]:
        return {"type": "keepalive"}


def _then_result(manager: SandboxManager, sandbox_id: str, exec_id: str,
                 events: Iterator[Any]) -> Iterator[Any]:  # fmt: skip
    """The events (None: a keepalive), then the exec's result."""
    for event in events:
        yield _Keepalive() if event is None else event
    result = manager.exec_wait(sandbox_id, exec_id)
    if result is not None:
        yield result


async def _next(stream: AsyncIterator[bytes]) -> bytes:
    return await stream.__anext__()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _with_output(result: ExecResult) -> list[Any]:
    from sandpool.sandbox.models import OutputEvent

    events: list[Any] = [OutputEvent("stdout", 0, result.stdout)] if result.stdout else []
    if result.stderr:
        events.append(OutputEvent("stderr", 0, result.stderr))
    return [*events, result]


def create_worker_app(manager: SandboxManager, token: str,
                      ready: Callable[[], bool] = lambda: True,
                      metrics: ServiceMetrics | None = None) -> FastAPI:  # fmt: skip
    """The worker's internal app over its ``manager`` (``ready``: the /readyz answer;
    ``metrics``: served on /metrics, like the probes without the token)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if metrics is not None:
        registry = metrics

        @app.get("/metrics")
        def metrics_text() -> Response:
            return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ok = ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.exception_handler(SandpoolError)
    async def on_error(request: Request, exc: SandpoolError) -> JSONResponse:
        return error_answer(exc)

    inner = FastAPI(docs_url=None, redoc_url=None, openapi_url=None,
                    dependencies=[Depends(bearer_check(token))])  # fmt: skip
    inner.add_exception_handler(SandpoolError, on_error)  # type: ignore[arg-type]
    _routes(inner, manager)
    app.mount("/", inner)
    return app
