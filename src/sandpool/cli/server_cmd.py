"""``sandpool server``: the HTTP API (tenants, keys, pools, one-shot runs) on one machine."""

from __future__ import annotations

import logging

import click

from sandpool.cli.options import config_option, load

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


@click.command()
@click.option("--listen", callback=_listen, default=None, metavar="HOST:PORT",
              help="Address to listen on (default: gateway.http.host and .port, "
                   "127.0.0.1:1994).")  # fmt: skip
@click.option("--database", default=None, metavar="URL",
              help="SQLAlchemy URL of the database (default: gateway.database, else SQLite "
                   "in <stateDir>/service/service.db).")  # fmt: skip
@click.option("--redis", default=None, envvar="SANDPOOL_REDIS", metavar="URL",
              help="Be a gateway: dispatch sandboxes to `sandpool worker --gateway` processes "
                   "through this Redis (worker token: $SANDPOOL_WORKER_TOKEN).")  # fmt: skip
@click.option(
    "--local-worker",
    is_flag=True,
    help="With --redis: also start a worker of each configured pool on this machine.",
)
@config_option
def server(listen: tuple[str, int] | None, database: str | None, redis: str | None,
           local_worker: bool, config_files: tuple[str, ...]) -> None:  # fmt: skip
    """Serve the sandpool API over HTTP until SIGTERM or SIGINT.

    The admin key is $SANDPOOL_ADMIN_KEY when set; else one is made at the first start and
    printed once (only its hash is stored). Requests in flight get gateway.shutdownTimeout
    seconds to finish on SIGTERM; runs still going on then are stopped."""
    from sandpool.service.server import bind, build_context, serve_http

    _setup_logging()
    loaded = load(config_files)
    http = loaded.model.gateway.http
    host, port = listen or (http.host, http.port)
    sock = bind(host, port)
    if local_worker and redis is None:
        raise click.UsageError("--local-worker needs --redis (without it the server runs "
                               "everything itself already)")  # fmt: skip
    context = build_context(loaded, database=database)
    if redis is None:
        serve_http(context, sock)
        return
    from sandpool.cli.gateway_serve import serve_gateway

    serve_gateway(context, sock, redis, config_files if local_worker else None)
