"""The HTTP application: routes under ``/v1`` plus the operations endpoints, wrapped (outside
in) by the access log, the request size limits and the last-resort error boundary.

``create_app`` takes a ready ``ServiceContext``; ``lifespan`` stops runs in flight and
closes the executor and the store when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI

from sandpool.service import dashboard
from sandpool.service.access_log import AccessLog
from sandpool.service.context import ServiceContext
from sandpool.service.limits import RequestLimits
from sandpool.service.openapi import document
from sandpool.service.problems import ErrorBoundary, install_handlers
from sandpool.service.routes import ROUTERS
from sandpool.service.routes.files import is_upload
from sandpool.sizes import parse_size

__all__ = ["API_VERSION", "create_app"]

API_VERSION = "v1"
RUN_CLEANUP_WAIT = 30  # seconds a stopping server waits for stopped runs to clean up
log = logging.getLogger("sandpool.server")


def _lifespan(context: ServiceContext) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        context.stopping = True
        if context.sandboxes is not None:  # terminated (records ended), or kept for the next
            keep = context.gateway.on_shutdown == "keep"
            await anyio.to_thread.run_sync(partial(context.sandboxes.close, terminate=not keep))
        stopped = context.runs.stop_all()
        if stopped:
            log.info("stopped %d runs still going on", stopped)
        # their clean-up gives cgroup slots and disks back: wait for it before closing them
        if not await anyio.to_thread.run_sync(context.runs.wait_idle, RUN_CLEANUP_WAIT):
            log.warning("runs still cleaning up after %d s; `sandpool gc` removes what they "
                        "leave", RUN_CLEANUP_WAIT)  # fmt: skip
        for hook in context.on_stop:
            await anyio.to_thread.run_sync(hook)
        await anyio.to_thread.run_sync(context.runs.executor.close)
        context.store.close()

    return lifespan


def create_app(context: ServiceContext) -> FastAPI:
    """The ASGI application of one server."""
    app = FastAPI(title="sandpool", version=API_VERSION, lifespan=_lifespan(context),
                  description="Run untrusted code in containers grouped into worker pools.",
                  docs_url=None, redoc_url=None)  # fmt: skip
    app.state.context = context
    for router in ROUTERS:
        app.include_router(router)
    dashboard.install(app, context)  # /dashboard (not in the OpenAPI document)
    app.openapi = document  # type: ignore[method-assign]  # the checked-in document, exactly
    install_handlers(app, context.metrics)
    gateway = context.gateway
    app.add_middleware(ErrorBoundary, metrics=context.metrics)
    app.add_middleware(RequestLimits, max_headers=parse_size(gateway.max_request_headers),
                       max_body=parse_size(gateway.max_request_body),
                       streamed=is_upload)  # fmt: skip
    app.add_middleware(AccessLog, metrics=context.metrics)
    return app
