"""Request size limits, answered in the API's error shape before any handler runs: headers
over ``gateway.maxRequestHeaders`` (431), a body over ``gateway.maxRequestBody`` (413)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandpool.errors import HeadersTooLarge, PayloadTooLarge, ServiceError
from sandpool.service.problems import error_response
from sandpool.sizes import format_size

__all__ = ["RequestLimits"]


class RequestLimits:
    """Reads a JSON request's body whole (up to the limit) before the app sees it; paths for
    which ``streamed`` is true (uploads, later) get the body as it comes instead."""

    def __init__(self, app: ASGIApp, *, max_headers: int, max_body: int,
                 streamed: Callable[[str], bool] = lambda path: False) -> None:  # fmt: skip
        self.app, self.max_headers, self.max_body = app, max_headers, max_body
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = self.streamed(scope["path"])
        error = self._header_error(scope, streamed)
        if error is None and not streamed:
            body, error = await self._read_body(receive)
            receive = _replay(body, receive)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _header_error(self, scope: Scope, streamed: bool) -> ServiceError | None:
        headers = scope["headers"]
        if sum(len(k) + len(v) for k, v in headers) > self.max_headers:
            return HeadersTooLarge(f"the request headers are over {format_size(self.max_headers)}",
                                   hint="send fewer or shorter headers")  # fmt: skip
        for key, value in headers:
            too_large = value.isdigit() and int(value) > self.max_body
            if key == b"content-length" and not streamed and too_large:
                return self._too_large()
        return None

    async def _read_body(self, receive: Receive) -> tuple[bytes, ServiceError | None]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", None  # the client went away; the app sees an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is over {format_size(self.max_body)}",
            hint="gateway.maxRequestBody in the server's configuration",
        )


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    sent = [False]

    async def receive() -> Message:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive
