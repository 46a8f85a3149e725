"""``sandpool server``: build one server's context from the configuration and serve it with
uvicorn until SIGTERM or SIGINT.

Shutdown (uvicorn's, on SIGTERM/SIGINT): stop accepting, let requests in flight finish for up
to ``gateway.shutdownTimeout`` seconds, then the lifespan's end stops the runs still going on
(their clients get no answer) and removes the warm cgroups and disks.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from types import FrameType

import uvicorn
from fastapi import FastAPI

from sandpool.api import Sandpool
from sandpool.config.loader import LoadedConfig
from sandpool.errors import ServeError
from sandpool.sandbox import SandboxManager
from sandpool.service.app import create_app
from sandpool.service.auth import ADMIN_KEY_ENV, Authenticator
from sandpool.service.context import ServiceContext
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.runs import RunExecutor, RunService, SandpoolExecutor
from sandpool.service.sandboxes import SandboxService
from sandpool.sizes import parse_size
from sandpool.store import Store, default_url

__all__ = ["bind", "build_context", "parse_listen", "serve_http"]

log = logging.getLogger("sandpool.server")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); ValueError saying the form."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def build_context(loaded: LoadedConfig, *, database: str | None = None,
                  environ: Mapping[str, str] | None = None,
                  executor: RunExecutor | None = None,
                  sandboxes: bool = True) -> ServiceContext:  # fmt: skip
    """The store (migrated), the authenticator (admin key printed once) and the runs; and
    (``sandboxes``) the tenants' sandboxes run here, those a previous server left adopted,
    and the pools' ``warmPool``s filling (a gateway, ``--redis``, sets its workers' own
    instead)."""
    environ = os.environ if environ is None else environ
    gateway, resolved = loaded.model.gateway, loaded.resolved
    store = Store.open(database or gateway.database or default_url(resolved.state_dir))
    auth = Authenticator(store, environ.get(ADMIN_KEY_ENV) or None)
    first_key = auth.ensure_admin_key()
    if first_key is not None:
        print(f"sandpool server: the admin key (shown once, stored only hashed): {first_key}",
              file=sys.stdout, flush=True)  # fmt: skip
    metrics = ServiceMetrics()
    keep = gateway.on_shutdown == "keep"
    executor = executor or SandpoolExecutor(Sandpool(resolved), keep_sandboxes=keep)
    runs = RunService(resolved, executor, metrics)
    context = ServiceContext(config=resolved, gateway=gateway, store=store, auth=auth, runs=runs,
                             metrics=metrics)  # fmt: skip
    if sandboxes and isinstance(runs.executor, SandpoolExecutor):
        context.sandboxes = start_sandboxes(context, runs.executor.sandpool.sandboxes)
        runs.executor.sandpool.start_warm()  # after the adoption: runs and creates claim them
    return context


def start_sandboxes(context: ServiceContext, manager: SandboxManager) -> SandboxService:
    """The tenants' sandboxes, with those a previous server left running re-adopted."""
    service = SandboxService(context.config, manager, context.store, context.ledger,
                             context.metrics, context.quota_of)  # fmt: skip
    context.metrics.watch(manager)
    adopted, lost = service.adopt()
    if adopted or lost:
        log.info("re-adopted %d sandboxes; %d recorded ones were gone", adopted, lost)
    return service


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket, or ServeError naming the address and why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it a keep-alive client waits out a 40 ms delayed ACK on every answer
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another --listen address or stop what holds it",
        ) from exc
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_exit`` when a signal starts its shutdown."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None:
            self.on_exit()
        super().handle_exit(sig, frame)


def serve_http(context: ServiceContext, sock: socket.socket,
               on_exit: Callable[[], None] | None = None,
               extend: Callable[[FastAPI], None] | None = None) -> None:  # fmt: skip
    """Serve on ``sock`` until SIGTERM/SIGINT (then uvicorn's graceful shutdown, see the
    module doc); ``on_exit`` is called as the signal arrives (the serve socket stops
    accepting at the same time, ``service.daemon``); ``extend`` adds to the app (the
    gateway's internal dispatch endpoints)."""
    gateway = context.gateway
    app = create_app(context)
    if extend is not None:
        extend(app)
    config = uvicorn.Config(
        app, http="h11", loop="asyncio",
        lifespan="on", access_log=False, log_config=None, server_header=False,
        timeout_graceful_shutdown=int(max(1, gateway.shutdown_timeout)),
        # h11 answers a plain 400 past this; below it, RequestLimits answers 431 as JSON
        h11_max_incomplete_event_size=max(64 * 1024, 4 * parse_size(gateway.max_request_headers)),
    )  # fmt: skip
    host, port = sock.getsockname()[:2]
    log.info("serving the sandpool API on http://%s:%d/v1", host, port)
    _Server(config, on_exit).run(sockets=[sock])
