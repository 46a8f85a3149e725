"""``sandpool serve``: keep sandpool warm so that ``sandpool run`` starts at the runtime's speed."""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

import click

from sandpool.cli.options import Number
from sandpool.config.quantities import TIMEOUT_RANGE
from sandpool.errors import ServeError

__all__ = ["serve"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@click.command()
@click.option("--socket", "path", default=None, metavar="PATH",
              help="Socket to listen on (default: $SANDPOOL_SOCKET, else "
                   "/run/sandpool/serve.sock).")  # fmt: skip
@click.option("--idle-timeout", type=Number(TIMEOUT_RANGE, "seconds"), default=600.0,
              show_default=True, metavar="SECONDS",
              help="Close a configuration's warm state (its warm cgroups) once no run has "
                   "used it for this long.")  # fmt: skip
def serve(path: str | None, idle_timeout: float) -> None:
    """Run the `sandpool run` and `sandpool sandbox` requests handed over a unix socket, until
    SIGTERM/INT/HUP (the socket-only mode of `sandpool server`, which serves it too).

    `sandpool run` uses this server when it listens (same behaviour, without Python's start-up,
    imports and config loading), and runs in its own process otherwise. Containers of a
    stopping server are killed; its clients exit 137."""
    from sandpool.hostdirs import runtime_dir
    from sandpool.warm.protocol import SOCKET_ENV, socket_path
    from sandpool.warm.server import WarmServer

    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    path = path or socket_path(os.environ)
    if path is None:
        raise ServeError("no runtime directory for the socket",
                         hint=f"pass --socket or set ${SOCKET_ENV}")  # fmt: skip
    own_dir = os.path.dirname(os.path.abspath(path)) == runtime_dir(os.environ)
    server = WarmServer(path, own_dir=own_dir, idle_timeout=idle_timeout)
    server.bind()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("sandpool.serve").info("%s: stopping", signal.Signals(signum).name)
        server.stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP: its terminal closed
        signal.signal(signum, on_signal)
    logging.getLogger("sandpool.serve").info("serving `sandpool run` on %s", path)
    server.serve()
