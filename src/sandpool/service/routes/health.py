"""``/healthz`` (the process answers), ``/readyz`` (it can serve: database up, not stopping)
and ``/metrics`` (Prometheus); none needs a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sandpool.errors import ServiceUnavailable
from sandpool.service.context import context_of
from sandpool.service.metrics import CONTENT_TYPE_LATEST

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The server process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": None}})
def readyz(request: Request) -> dict[str, str]:
    """The server can serve requests: its database answers and it is not stopping."""
    context = context_of(request)
    if context.stopping:
        raise ServiceUnavailable("the server is stopping", hint="use another server")
    if not context.store.ping():
        raise ServiceUnavailable("the database does not answer",
                                 hint="the server's log says why")  # fmt: skip
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    body = context_of(request).metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
