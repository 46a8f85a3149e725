"""``sandpool serve``: a warm process that runs the ``sandpool run`` command lines handed to it.

A run here behaves as it would in the client's own process: the same click parsing and
messages, the same ``Sandpool.run_request``, the configuration the client names (its ``-c``
files relative to its directory, its ``SANDPOOL_*`` variables; one ``Sandpool`` is kept per
configuration, keyed like the config cache), the container's stdio on the client's own fds.
What the server saves is the client's start-up: imports, config loading, runtime checks.

Thread-safety and lifecycle: one thread per connection; ``stop()`` (from any thread) closes
the socket, stops every running container (its client gets 137 and a line on its stderr),
waits for the runs to clean up, and removes the socket file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TextIO

import click

from sandpool.api import Sandpool
from sandpool.cli.run_cmd import RunArgs, Streams, execute, parse_run_args, stdin_fd
from sandpool.config.cache import cache_key, load_resolved
from sandpool.config.paths import CONFIG_ENV_VAR, config_paths
from sandpool.errors import EXIT_CANNOT_START, SandpoolError, ServeError
from sandpool.warm.protocol import MAX_MESSAGE, decode, encode, peer_uid, server_listens
from sandpool.warm.sandbox_ops import request_config, serve_sandbox_request
from sandpool.worker.container import EXIT_KILLED, ContainerRun
from sandpool.worker.recovery import reconcile_dead_owners

__all__ = ["WarmServer"]

log = logging.getLogger(__name__)
RECONCILE_EVERY_S = 10.0


class ClientRun:
    """One connection's run: its container, and why it was stopped (if it was)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.container: ContainerRun | None = None
        self.signal: int | None = None
        self.stopped_by_server = False
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def attach(self, container: ContainerRun) -> None:
        """Called by ``run_request`` before the container is prepared."""
        with self._lock:
            self.container = container
            stop = self.signal is not None or self.stopped_by_server
        if stop:
            container.stop()

    def stop(self) -> None:
        """Kill the container (if any yet) unless the run is already over."""
        with self._lock:
            container = None if self.finished.is_set() else self.container
        if container is not None:
            container.stop()

    def watch_client(self) -> None:
        """Until the run ends: a signal from the client, or its death (EOF), stops the run."""
        while not self.finished.is_set():
            try:
                data = self.conn.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                if not self.finished.is_set():
                    self.signal = self.signal or 9
                    self.stop()
                return
            with contextlib.suppress(ValueError):
                signum = decode(data).get("signal")
                if isinstance(signum, int):
                    self.signal = signum
                    self.stop()


class WarmServer:
    """Serves ``sandpool run`` requests on the unix socket at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._runs: set[ClientRun] = set()
        self._threads: set[threading.Thread] = set()
        self._pools: dict[str, Sandpool] = {}
        self._reconciled: dict[str, float] = {}

    # ---- socket ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen at ``path`` (0600, directory 0700); a stale socket file is replaced."""
        if os.path.exists(self.path) and server_listens(self.path):
            raise ServeError(f"another `sandpool serve` already listens on {self.path}",
                             hint="stop it first, or pass --socket")  # fmt: skip
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # stale: nobody listens
            old_umask = os.umask(0o177)  # the socket is born 0600
            try:
                listener.bind(self.path)
            finally:
                os.umask(old_umask)
        except OSError as exc:
            listener.close()
            raise ServeError(
                f"cannot listen on {self.path}: {exc.strerror or exc}",
                hint="pass --socket with a path in a writable directory",
            ) from exc
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener

    def serve(self) -> None:
        """Accept connections until ``stop()``; then wind down (see the module docstring)."""
        assert self._listener is not None, "bind() first"
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(None)
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()
        self._wind_down()

    def stop(self) -> None:
        """Ask ``serve()`` to return (safe from signal handlers and other threads)."""
        self._stopping.set()

    def _wind_down(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            runs, threads = list(self._runs), list(self._threads)
        for run in runs:
            run.stopped_by_server = True
            run.stop()
        with self._lock:
            pools = list(self._pools.values())
        for sandpool in pools:  # their execs end, so the requests streaming them return
            sandpool.close_sandboxes()
        for thread in threads:
            thread.join(timeout=60)
        with self._lock:
            pools = list(self._pools.values())
        for sandpool in pools:
            sandpool.close()  # removes its warm cgroups

    # ---- one run ----------------------------------------------------------------------------

    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        run = ClientRun(conn)
        try:
            with conn:
                if peer_uid(conn) != os.geteuid():
                    log.warning("refused a client of another user")
                    return
                data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3, socket.MSG_CMSG_CLOEXEC)
                if len(fds) != 3 or not data:
                    return
                with self._lock:
                    self._runs.add(run)
                    run.stopped_by_server = self._stopping.is_set()  # too late: stop it at once
                code = self._run_reporting_bugs(run, data, fds)
                run.finished.set()
                with contextlib.suppress(OSError):
                    conn.send(encode({"exit": code}))
                    conn.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError) as exc:
            log.warning("a run request failed: %s", exc)
        finally:
            run.finished.set()
            for fd in fds:
                os.close(fd)
            with self._lock:
                self._runs.discard(run)
                self._threads.discard(threading.current_thread())

    def _run_reporting_bugs(self, run: ClientRun, data: bytes, fds: list[int]) -> int:
        """``_run``; a bug of ours reaches the client as one line and 125, not as silence."""
        try:
            request = decode(data)
            if "sandbox" in request:  # `sandpool sandbox …`: structured (warm.sandbox_ops)
                return self._sandbox_request(run, request, fds)
            return self._run(run, request, fds)
        except Exception as exc:
            log.exception("run request failed")
            with contextlib.suppress(OSError):
                os.write(fds[2], f"sandpool serve: internal error: {exc!r}\n".encode())
            return EXIT_CANNOT_START

    def _run(self, run: ClientRun, request: Mapping[str, object], fds: list[int]) -> int:
        out = open(fds[1], "w", closefd=False, buffering=1)  # noqa: SIM115 - fd closed by caller
        err = open(fds[2], "w", closefd=False, buffering=1)  # noqa: SIM115
        with out, err:
            streams = Streams(stdin_fd(fds[0]), fds[1], fds[2], out, err)
            try:
                args, environ = self._arguments(request)
                sandpool = self._sandpool(args.config_files, environ)
            except SandpoolError as error:
                err.write(f"{type(error).__name__}: {error}\n")
                return EXIT_CANNOT_START
            except click.UsageError as usage:
                usage.show(file=err)
                return EXIT_CANNOT_START
            watcher = threading.Thread(target=run.watch_client, daemon=True)
            watcher.start()
            code = self._final_status(run, execute(args, sandpool, streams, run.attach), err)
            container_id = run.container.id if run.container else "-"
            log.info("run %s pool=%s exit=%d", container_id, args.pool, code)
            return code

    def _sandbox_request(self, run: ClientRun, request: Mapping[str, object],
                         fds: list[int]) -> int:  # fmt: skip
        try:
            sandpool = self._sandpool(*request_config(request))
        except SandpoolError as error:
            os.write(fds[2], f"{type(error).__name__}: {error}\n".encode())
            return error.exit_code
        return serve_sandbox_request(sandpool, request, fds, run.conn)

    @staticmethod
    def _final_status(run: ClientRun, code: int, err: TextIO) -> int:
        if run.stopped_by_server:
            err.write("sandpool: `sandpool serve` stopped; the container was killed\n")
            return EXIT_KILLED
        if run.signal is not None:
            return 128 + run.signal  # 130 SIGINT, 143 SIGTERM: as an in-process run exits
        return code

    @staticmethod
    def _arguments(request: Mapping[str, object]) -> tuple[RunArgs, dict[str, str]]:
        """The client's arguments, with its relative config paths made absolute."""
        argv, cwd, env = request.get("argv"), request.get("cwd"), request.get("env")
        if not (isinstance(argv, list) and isinstance(cwd, str) and isinstance(env, dict)):
            raise SandpoolError("malformed run request")
        args = parse_run_args([str(a) for a in argv])
        environ = {str(k): str(v) for k, v in env.items()}
        if environ.get(CONFIG_ENV_VAR):
            environ[CONFIG_ENV_VAR] = os.path.join(cwd, environ[CONFIG_ENV_VAR])
        files = tuple(os.path.join(cwd, f) for f in args.config_files)
        return replace(args, config_files=files), environ

    def _sandpool(self, files: tuple[str, ...], environ: Mapping[str, str]) -> Sandpool:
        """The warm ``Sandpool`` of this configuration (loaded, and reconciled, when new)."""
        key = cache_key(config_paths(files, environ), environ)
        with self._lock:
            sandpool = self._pools.get(key) if key else None
        if sandpool is None:
            sandpool = Sandpool(load_resolved(files, environ))
            if key:
                with self._lock:
                    sandpool = self._pools.setdefault(key, sandpool)
            sandpool.sandboxes.adopt()  # a previous server's live sandboxes, before gc
        if key and time.monotonic() - self._reconciled.get(key, 0.0) > RECONCILE_EVERY_S:
            self._reconciled[key] = time.monotonic()
            reconcile_dead_owners(sandpool.config)
        return sandpool
