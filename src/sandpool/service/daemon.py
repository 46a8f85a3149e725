"""One daemon: ``sandpool server`` also listens on the local serve socket that ``sandpool
run`` and ``sandpool sandbox …`` hand their requests to (``warm.server``: fd passing, the
peer-uid check), on the same ``Sandpool`` as its HTTP API (warm cgroups, disks, sandboxes).

Shutdown (SIGTERM/SIGINT): the socket stops accepting as the HTTP side does; requests in
flight on it get ``gateway.shutdownTimeout`` seconds; then containers and exec streams still
going are stopped (their clients get 137), and the sandboxes are terminated or left running
for the next start to adopt (``gateway.onShutdown``). The HTTP side's own runs end first, and
the shared ``Sandpool`` is closed last (``service.app``'s lifespan).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from sandpool.hostdirs import runtime_dir
from sandpool.service.context import ServiceContext
from sandpool.service.runs import SandpoolExecutor
from sandpool.warm.server import WarmServer

__all__ = ["SocketSide"]

log = logging.getLogger("sandpool.server")


class SocketSide:
    """The serve socket of a ``sandpool server``: ``bind`` (before the context exists, so a
    taken socket fails fast), ``start`` with the context, ``stop`` from a signal handler."""

    def __init__(self, path: str, grace: float, keep_sandboxes: bool,
                 environ: Mapping[str, str]) -> None:  # fmt: skip
        own_dir = os.path.dirname(os.path.abspath(path)) == runtime_dir(environ)
        self.server = WarmServer(path, own_dir=own_dir, grace=grace,
                                 keep_sandboxes=keep_sandboxes, name="sandpool server")  # fmt: skip
        self._thread = threading.Thread(target=self.server.serve, name="serve-socket",
                                        daemon=True)  # fmt: skip

    def bind(self) -> None:
        """Listen (ServeError naming the path and the fix if it cannot)."""
        self.server.bind()

    def start(self, context: ServiceContext, files: tuple[str, ...],
              environ: Mapping[str, str]) -> None:  # fmt: skip
        """Serve, runs of the server's own configuration on its ``Sandpool``; the context's
        stop calls ``join`` before that ``Sandpool`` closes."""
        executor = context.runs.executor
        if isinstance(executor, SandpoolExecutor):
            absolute = tuple(os.path.abspath(f) for f in files)
            self.server.pools.share(absolute, environ, executor.sandpool)
        context.on_stop.append(self.join)
        self._thread.start()
        log.info("serving `sandpool run` and `sandpool sandbox` on %s", self.server.path)

    def stop(self) -> None:
        """Stop accepting and start winding down (safe from a signal handler)."""
        self.server.stop()

    def join(self) -> None:
        """Stop, and wait until the socket's requests have ended (or a bound never served:
        remove the socket now)."""
        self.server.stop()
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join()
        else:
            self.server.serve()  # stopping already: only winds down
