"""One JSON line per request (method, path, route, status, duration, tenant, request id) on
the ``sandpool.access`` logger, and the request metrics: the outermost ASGI wrapper."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandpool.service.metrics import ServiceMetrics

__all__ = ["AccessLog", "route_of"]

log = logging.getLogger("sandpool.access")


def route_of(scope: Scope) -> str:
    """The route's path template (``/v1/tenants/{name}``), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLog:
    """Times each HTTP request, counts it and logs it; gives it an ``X-Request-Id``."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        start, status = time.perf_counter(), [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]  # fmt: skip
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status[0], time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route, method = route_of(scope), scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.request_seconds.labels(method, route).observe(seconds)
        state: dict[str, Any] = scope.get("state", {})
        log.info(json.dumps({
            "event": "request", "method": method, "path": scope["path"], "route": route,
            "status": status, "durationMs": round(seconds * 1000, 3),
            "tenant": state.get("tenant"), "requestId": state.get("request_id"),
            "client": (scope.get("client") or [None])[0],
        }))  # fmt: skip
