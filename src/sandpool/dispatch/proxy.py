"""Reverse proxy from the gateway to the worker holding a sandbox: the request's body and
the worker's answer both stream (nothing is buffered whole), the worker token replaces the
caller's credentials, and a worker that does not answer is a 503 naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandpool.errors import WorkerLost

__all__ = ["WorkerProxy"]

_PASSED = ("content-type", "accept")  # request headers the worker sees; no credentials
_RETURNED = ("content-type", "retry-after")  # the answer's; length and encoding are the hop's


class WorkerProxy:
    """One pooled async HTTP client for every worker."""

    def __init__(self, token: str, *, connect_timeout: float = 5.0) -> None:
        self.token = token
        timeout = httpx.Timeout(connect=connect_timeout, read=None, write=60.0, pool=30.0)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        self.client = httpx.AsyncClient(timeout=timeout, limits=limits)

    async def forward(self, request: Request, address: str, path: str,
                      body: AsyncIterator[bytes] | None = None) -> Response:  # fmt: skip
        """Send ``request`` (method, query, body: its own, or ``body`` in its place) to
        ``address + path``; the worker's answer, streamed back as it comes."""
        headers = {k: v for k, v in request.headers.items() if k.lower() in _PASSED}
        headers["authorization"] = f"Bearer {self.token}"
        has_body = request.method in ("POST", "PUT", "PATCH")
        outgoing = self.client.build_request(
            request.method, address.rstrip("/") + path, params=request.query_params,
            headers=headers, content=(body or request.stream()) if has_body else None,
        )  # fmt: skip
        try:
            answer = await self.client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            raise WorkerLost(f"the worker at {address} does not answer: {exc}",
                             hint="retry; if it persists the worker is gone") from exc  # fmt: skip
        kept = {k: v for k, v in answer.headers.items() if k.lower() in _RETURNED}
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, headers=kept,
            background=BackgroundTask(answer.aclose),
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()
