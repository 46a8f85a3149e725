"""Every failure as one JSON shape, ``{"code", "message", "hint"}``, with its status: the
service's own errors, sandpool's core errors, FastAPI's validation errors, unknown routes, and
(last) anything unexpected, which is logged with its traceback and never shown."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sandpool.errors import (
    ConfigError,
    ContainerError,
    ContainerRuntimeError,
    ImageError,
    InternalServerError,
    InvalidRequest,
    NotFound,
    PlatformNotSupported,
    RuntimeNotAvailable,
    SandboxError,
    SandpoolError,
    ServiceError,
    ServiceUnavailable,
)
from sandpool.service.database_errors import database_unavailable
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.sandbox_errors import sandbox_error

__all__ = ["ErrorBoundary", "as_service_error", "error_response", "install_handlers"]

log = logging.getLogger("sandpool.server")
_HTTP_CODES = {404: NotFound, 405: InvalidRequest}


def error_response(error: ServiceError) -> JSONResponse:
    """The JSON answer for ``error``, with Retry-After where it has one."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    body = {"code": error.code, "message": error.message, "hint": error.hint}
    return JSONResponse(body, status_code=error.status, headers=headers)


def as_service_error(error: SandpoolError) -> ServiceError:
    """A core error as the API states it (the pool or image the request named, the runtime)."""
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, SandboxError):
        return sandbox_error(error)
    if isinstance(error, RuntimeNotAvailable | PlatformNotSupported):
        return ServiceUnavailable(f"pool unavailable: {error.message}", hint=error.hint)
    if isinstance(error, ConfigError):
        return InvalidRequest(f"pool: {error.message}", hint=error.hint, field="pool")
    if isinstance(error, ImageError):
        return InvalidRequest(f"image: {error.message}", hint=error.hint, field="image")
    if isinstance(error, ContainerError):
        return InvalidRequest(f"the container could not start: {error.message}",
                              hint=error.hint)  # fmt: skip
    if isinstance(error, ContainerRuntimeError):
        return ServiceUnavailable(f"the runtime failed: {error.message}", hint=error.hint)
    return InternalServerError(error.message, hint=error.hint)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_error(exc: RequestValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            "the body is not valid JSON",
            field="body",
            hint="send a JSON object with Content-Type: application/json",
        )
    field = _field(tuple(first.get("loc", ())))
    count = len(exc.errors())
    more = f" (and {count - 1} more problems)" if count > 1 else ""
    return InvalidRequest(
        f"{field}: {first.get('msg', 'invalid')}{more}",
        field=field,
        hint="the OpenAPI document at /openapi.json has every field",
    )


def install_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Route every error the framework or the core raises to ``error_response``."""

    def answer(error: ServiceError) -> Response:
        metrics.errors.labels(error.code).inc()
        return error_response(error)

    async def on_sandpool(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SandpoolError)
        return answer(as_service_error(exc))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return answer(_validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = _HTTP_CODES.get(exc.status_code, InvalidRequest)
        error = kind(f"{request.method} {request.url.path}: {exc.detail}")
        error.status = exc.status_code  # keep 405 etc. as they are
        return answer(error)

    app.add_exception_handler(SandpoolError, on_sandpool)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


class ErrorBoundary:
    """The last resort: an exception nothing handled becomes a 500 in the JSON shape, with
    the request id to find the traceback in the server's log."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = [False]

        async def tracking_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request_id = scope.get("state", {}).get("request_id")
            outage = database_unavailable(exc)
            if outage is not None and not started[0]:
                log.warning("request %s: %s", request_id, outage.message)
                self.metrics.errors.labels(outage.code).inc()
                await error_response(outage)(scope, receive, send)
                return
            log.exception("request %s failed", request_id)
            if started[0]:
                raise
            self.metrics.errors.labels("internal").inc()
            error = InternalServerError(
                "internal server error", hint=f"the server's log has request {request_id}"
            )
            await error_response(error)(scope, receive, send)
