"""``sandpool server``: the HTTP API (tenants, keys, pools, one-shot runs) on one machine,
and the local serve socket of ``sandpool run`` / ``sandpool sandbox`` (one daemon)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from sandpool.cli.options import config_option, load

if TYPE_CHECKING:
    from sandpool.config.models import GatewayConfig
    from sandpool.service.daemon import SocketSide

__all__ = ["server"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _listen(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    from sandpool.service.server import parse_listen

    if value is None:
        return None
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _setup_logging() -> None:
    """Plain lines for the server's own messages; the access log is one JSON object a line."""
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    access = logging.getLogger("sandpool.access")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False


def _socket_side(path: str | None, no_socket: bool,
                 gateway: GatewayConfig) -> SocketSide | None:  # fmt: skip
    """The serve socket's side of the daemon, bound; None with --no-socket (or nowhere)."""
    from sandpool.service.daemon import SocketSide
    from sandpool.warm.protocol import socket_path

    path = None if no_socket else path or socket_path(os.environ)
    if path is None:
        if not no_socket:
            logging.getLogger("sandpool.server").warning(
                "no runtime directory for the serve socket: `sandpool run` will not use this "
                "server (pass --socket or set $SANDPOOL_SOCKET)"
            )
        return None
    keep = gateway.on_shutdown == "keep"
    side = SocketSide(path, gateway.shutdown_timeout, keep, os.environ)
    side.bind()
    return side


@click.command()
@click.option("--listen", callback=_listen, default=None, metavar="HOST:PORT",
              envvar="SANDPOOL_LISTEN", show_envvar=True,
              help="Address to listen on (default: gateway.http.host and .port, "
                   "127.0.0.1:1994).")  # fmt: skip
@click.option("--database", default=None, metavar="URL", envvar="SANDPOOL_DATABASE",
              show_envvar=True,
              help="SQLAlchemy URL of the database (default: gateway.database, else SQLite "
                   "in <stateDir>/service/service.db).")  # fmt: skip
@click.option("--redis", default=None, envvar="SANDPOOL_REDIS", metavar="URL",
              help="Be a gateway: dispatch sandboxes and runs to `sandpool worker --gateway` "
                   "processes through this Redis (default: gateway.redis; worker token: "
                   "$SANDPOOL_WORKER_TOKEN).")  # fmt: skip
@click.option(
    "--local-worker",
    is_flag=True,
    help="With --redis: also start a worker of each configured pool on this machine.",
)
@click.option("--socket", "socket_path", default=None, metavar="PATH",
              help="Also serve `sandpool run` and `sandpool sandbox` on this unix socket "
                   "(default: $SANDPOOL_SOCKET, else /run/sandpool/serve.sock).")  # fmt: skip
@click.option("--no-socket", is_flag=True, help="Serve HTTP only (no serve socket).")
@config_option
def server(listen: tuple[str, int] | None, database: str | None, redis: str | None,
           local_worker: bool, socket_path: str | None, no_socket: bool,
           config_files: tuple[str, ...]) -> None:  # fmt: skip
    """Serve the sandpool API over HTTP, and `sandpool run` / `sandpool sandbox` on the local
    serve socket (as `sandpool serve` does), until SIGTERM or SIGINT.

    The admin key is $SANDPOOL_ADMIN_KEY when set; else one is made at the first start and
    printed once (only its hash is stored). On SIGTERM both sides stop accepting; requests in
    flight get gateway.shutdownTimeout seconds to finish; runs still going on then are stopped;
    sandboxes are terminated or kept for the next start (gateway.onShutdown)."""
    from sandpool.service.server import bind, build_context, serve_http

    _setup_logging()
    loaded = load(config_files)
    gateway = loaded.model.gateway
    redis = redis or gateway.redis or None  # --redis / SANDPOOL_REDIS, else gateway.redis
    host, port = listen or (gateway.http.host, gateway.http.port)
    sock = bind(host, port)
    if local_worker and redis is None:
        raise click.UsageError("--local-worker needs --redis (without it the server runs "
                               "everything itself already)")  # fmt: skip
    side = _socket_side(socket_path, no_socket, gateway)
    try:
        context = build_context(loaded, database=database, sandboxes=redis is None)
        if side is not None:
            side.start(context, config_files, os.environ)
        on_exit = side.stop if side is not None else None
        if redis is None:
            serve_http(context, sock, on_exit=on_exit)
        else:
            from sandpool.cli.gateway_serve import serve_gateway

            serve_gateway(context, sock, redis, config_files if local_worker else None,
                          on_exit=on_exit)  # fmt: skip
    finally:
        if side is not None:
            side.join()  # a no-op after a clean stop; else it removes the socket
