"""``sandpool server --redis URL``: the HTTP API plus the dispatch to workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from fastapi import FastAPI

from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.internal_routes import install_dispatch
from sandpool.dispatch.proxy import WorkerProxy
from sandpool.dispatch.public_routes import install_public_routes
from sandpool.dispatch.redis_quotas import RedisQuotas
from sandpool.dispatch.remote_runs import RemoteRunExecutor
from sandpool.dispatch.remote_sandboxes import RemoteSandboxes
from sandpool.dispatch.setup import gateway_dispatch
from sandpool.service.context import ServiceContext
from sandpool.service.server import serve_http
from sandpool.sizes import parse_size

__all__ = ["serve_gateway"]

log = logging.getLogger("sandpool.server")


def serve_gateway(context: ServiceContext, sock: socket.socket, redis_url: str,
                  local_worker: tuple[str, ...] | None = None,
                  on_exit: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Serve the API with the dispatch's internal endpoints until SIGTERM/SIGINT; the
    dispatcher (``app.state.dispatcher``) places and reaps in the background meanwhile.
    ``local_worker`` (the config files): start a ``sandpool worker`` of each pool too."""
    dispatcher, token = gateway_dispatch(redis_url, context.config, os.environ)
    proxies: list[WorkerProxy] = []
    quotas = RedisQuotas(dispatcher.broker)
    context.ledger = quotas  # one count for every gateway, before anything is admitted
    quotas.start()
    local_runs, context.runs.executor = (context.runs.executor,
                                         RemoteRunExecutor(dispatcher, context.config))  # fmt: skip
    local_runs.close()  # one-shot runs go to the workers too, not this process
    sandboxes = remote_sandboxes(context, dispatcher, token)

    def extend(app: FastAPI) -> None:
        app.state.dispatcher = dispatcher
        proxy = install_dispatch(app, dispatcher, token)
        proxies.append(proxy)
        install_public_routes(app, sandboxes, proxy,
                              parse_size(context.gateway.max_upload_size))  # fmt: skip

    dispatcher.start()
    log.info("gateway: dispatching through %s", redis_url)
    workers = [] if local_worker is None else start_local_workers(context, sock, local_worker)
    # uvicorn raises the signal it stopped for again once done: ignore it there, so the
    # local workers are stopped below (they terminate their sandboxes) before the exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)

    def stopping() -> None:
        dispatcher.stop_reaping()
        if on_exit is not None:
            on_exit()

    try:
        serve_http(context, sock, on_exit=stopping, extend=extend)
    finally:
        stop_local_workers(workers)
        quotas.close()
        dispatcher.close()
        for proxy in proxies:  # its loop is gone: close what can be closed, quietly
            with contextlib.suppress(Exception):
                asyncio.run(proxy.aclose())


def remote_sandboxes(context: ServiceContext, dispatcher: Dispatcher,
                     token: str) -> RemoteSandboxes:  # fmt: skip
    """The public sandbox routes' backend on a gateway: its workers run the sandboxes."""
    sandboxes = RemoteSandboxes(context.config, dispatcher, context.store, context.ledger,
                                context.metrics, context.quota_of, token)  # fmt: skip
    kept, ended = sandboxes.adopt()
    if kept or ended:
        log.info("%d recorded sandboxes still run on workers; %d had ended", kept, ended)
    context.sandboxes = sandboxes
    return sandboxes


Workers = list[subprocess.Popen[bytes]]


def start_local_workers(context: ServiceContext, sock: socket.socket,
                        config_files: tuple[str, ...]) -> Workers:  # fmt: skip
    """A ``sandpool worker --gateway`` of each configured pool, on loopback ports of their own
    (they register once the gateway answers)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    gateway = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    files = [x for f in config_files for x in ("-c", f)]
    workers = []
    for pool in context.config.pools:
        argv = [sys.executable, "-c", "from sandpool.cli.entry import main; main()",
                "worker", "--pool", pool,
                "--gateway", gateway, "--listen", "127.0.0.1:0", *files]  # fmt: skip
        workers.append(subprocess.Popen(argv))
        log.info("local worker of pool %s: pid %d", pool, workers[-1].pid)
    return workers


def stop_local_workers(workers: Workers) -> None:
    """SIGTERM each (they terminate their sandboxes), then wait for them."""
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            log.warning("local worker %d did not stop: killing it", proc.pid)
            proc.kill()
            proc.wait()
