"""``sandpool server --redis URL``: the HTTP API plus the dispatch to workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from fastapi import FastAPI

from sandpool.dispatch.internal_routes import install_dispatch
from sandpool.dispatch.proxy import WorkerProxy
from sandpool.dispatch.setup import gateway_dispatch
from sandpool.service.context import ServiceContext
from sandpool.service.server import serve_http

__all__ = ["serve_gateway"]

log = logging.getLogger("sandpool.server")


def serve_gateway(context: ServiceContext, sock: socket.socket, redis_url: str) -> None:
    """Serve the API with the dispatch's internal endpoints until SIGTERM/SIGINT; the
    dispatcher (``app.state.dispatcher``) places and reaps in the background meanwhile."""
    dispatcher, token = gateway_dispatch(redis_url, context.config, os.environ)
    proxies: list[WorkerProxy] = []

    def extend(app: FastAPI) -> None:
        app.state.dispatcher = dispatcher
        proxies.append(install_dispatch(app, dispatcher, token))

    dispatcher.start()
    log.info("gateway: dispatching through %s", redis_url)
    try:
        serve_http(context, sock, extend)
    finally:
        dispatcher.close()
        for proxy in proxies:  # its loop is gone: close what can be closed, quietly
            with contextlib.suppress(Exception):
                asyncio.run(proxy.aclose())
