"""The gateway's exec and file routes (``/v1/sandboxes/{id}/execs…``, ``…/files…``): the
tenant's key and ownership are checked here (another tenant's sandbox is 404, an ended one
409), then the request goes as it is to the worker holding the sandbox, which runs the
public route itself (``dispatch.worker_public``). Bodies and answers stream both ways:
exec events (with their resume offsets), stdin, uploads and downloads. An upload is bounded
here by ``gateway.maxUploadSize`` (413), declared or streamed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from sandpool.dispatch.proxy import WorkerProxy
from sandpool.dispatch.remote_sandboxes import RemoteSandboxes
from sandpool.dispatch.worker_public import API_PREFIX
from sandpool.errors import Conflict
from sandpool.service.apikeys import Principal
from sandpool.service.auth import require_tenant
from sandpool.service.context import authenticate
from sandpool.service.routes.files import is_upload
from sandpool.service.streams import upload_too_large

__all__ = ["install_public_routes"]

Caller = Annotated[Principal, Depends(authenticate)]
_METHODS = ["GET", "POST", "PUT", "DELETE"]


async def _bounded(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in body:
        seen += len(chunk)
        if seen > limit:
            raise upload_too_large(limit)
        yield chunk


def install_public_routes(app: FastAPI, sandboxes: RemoteSandboxes, proxy: WorkerProxy,
                          max_upload: int) -> None:  # fmt: skip
    """Put the forwarding routes in front of the app's own exec and file routes."""
    router = APIRouter(include_in_schema=False)

    async def forward(sandbox_id: str, request: Request, caller: Caller) -> Response:
        tenant = require_tenant(caller)
        record = await anyio.to_thread.run_sync(sandboxes.owned, tenant, sandbox_id)
        if record.state == "terminated":
            raise Conflict(f"sandbox {sandbox_id} has ended ({record.reason})",
                           hint="create a new sandbox")  # fmt: skip
        address = await anyio.to_thread.run_sync(sandboxes.address_of, sandbox_id)
        body = None
        if request.method == "PUT" and is_upload(request.url.path):
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_upload:
                raise upload_too_large(max_upload)
            body = _bounded(request.stream(), max_upload)
        return await proxy.forward(request, address, API_PREFIX + request.url.path, body=body)

    for area in ("execs", "files"):
        router.add_api_route(f"/v1/sandboxes/{{sandbox_id}}/{area}{{rest:path}}", forward,
                             methods=_METHODS)  # fmt: skip
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added  # matched before the routes that run sandboxes here
