"""``sandpool serve``: a warm process that runs the ``sandpool run`` requests handed to it.

A run here behaves as it would in the client's own process: the client's flags as checked
data (``warm.run_message``: the same bounds and words as click's), the same ``oneshot.
execute`` and ``Sandpool.run_request``, the configuration the client names (its ``-c``
files relative to its directory, its ``SANDPOOL_*`` variables; one ``Sandpool`` is kept per
configuration, keyed like the config cache, and closed when idle: ``warm.pools``), the
container's stdio on the client's own fds. What the server saves is the client's start-up:
imports, config loading, runtime checks.

Thread-safety and lifecycle: one thread per connection; ``stop()`` (from any thread) closes
the socket and removes its file, gives the requests in flight ``grace`` seconds to finish,
then stops every container still running (its client gets 137 and a line on its stderr) and
every sandbox exec still streamed (the same), terminates the sandboxes or leaves them running
for the next server to adopt (``keep_sandboxes``), and waits for the runs to clean up.
``sandpool serve`` has no grace; ``sandpool server`` gives ``gateway.shutdownTimeout`` and
``gateway.onShutdown`` (``service.daemon``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Mapping

from sandpool.api import Sandpool
from sandpool.errors import EXIT_CANNOT_START, SandpoolError, ServeError
from sandpool.oneshot.execute import RunArgs, Streams, execute, stdin_fd
from sandpool.warm.messages import BadMessage, RunMessage, parse_request, parse_signal
from sandpool.warm.pools import DEFAULT_IDLE_TIMEOUT_S, WarmSandpools
from sandpool.warm.protocol import MAX_MESSAGE, encode, peer_uid, server_listens
from sandpool.warm.run_message import run_args, run_environ
from sandpool.warm.sandbox_ops import request_config, serve_sandbox_request
from sandpool.worker.container import EXIT_KILLED
from sandpool.worker.handle import RunHandle

__all__ = ["WarmServer"]

log = logging.getLogger(__name__)
EVICT_EVERY_S = 1.0  # how often idle configurations are looked for


class ClientRun:
    """One connection's run: its container, and why it was stopped (if it was)."""

    def __init__(self, conn: socket.socket, server_name: str) -> None:
        self.conn, self.server_name = conn, server_name
        self.container: RunHandle | None = None  # cold or warm (``worker.handle``)
        self.signal: int | None = None
        self.bad_message: str | None = None  # the client broke the protocol: 125, this line
        self.stopped_by_server = False
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def attach(self, container: RunHandle) -> None:
        """Called by ``run_request`` before the container is prepared."""
        with self._lock:
            self.container = container
            stop = self.signal is not None or self.stopped_by_server or bool(self.bad_message)
        if stop:
            container.stop()

    def stop(self) -> None:
        """Kill the container (if any yet) unless the run is already over."""
        with self._lock:
            container = None if self.finished.is_set() else self.container
        if container is not None:
            container.stop()

    def end(self) -> None:
        """The server stops: kill the container, and end a sandbox exec's stream (its reader,
        ``sandbox_ops``, sees the client's EOF and kills the exec; the sandbox stays)."""
        self.stopped_by_server = True
        self.stop()
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RD)

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
            try:
                self.signal = parse_signal(data)
            except BadMessage as bad:
                self.bad_message = str(bad)
            self.stop()


class WarmServer:
    """Serves ``sandpool run`` requests on the unix socket at ``path``.

    ``own_dir``: the socket's directory is sandpool's own (the default runtime directory),
    made 0700 even if something else created it first; another existing directory keeps its
    mode (a new one is created 0700). ``idle_timeout``: seconds after which a configuration
    no run used has its ``Sandpool`` closed. ``grace`` and ``keep_sandboxes``: see the module
    docstring. ``name``: the command, as its clients' messages name it.
    """

    def __init__(self, path: str, *, own_dir: bool = False,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S, grace: float = 0.0,
                 keep_sandboxes: bool = False, name: str = "sandpool serve") -> None:  # fmt: skip
        self.path, self.own_dir, self.name = path, own_dir, name
        self.grace, self.keep_sandboxes = grace, keep_sandboxes
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._runs: set[ClientRun] = set()
        self._threads: set[threading.Thread] = set()
        self.pools = WarmSandpools(idle_timeout)

    # ---- socket ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen at ``path`` (0600, directory 0700); only a stale socket file is replaced."""
        _refuse_non_socket(self.path)
        if os.path.exists(self.path) and server_listens(self.path):
            raise ServeError(
                f"another `sandpool serve` already listens on {self.path}",
                hint="stop that `sandpool serve` (or `sandpool server`) first, or pass "
                "--socket PATH (`sandpool server`: or --no-socket)",
            )
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            _private_dir(os.path.dirname(self.path) or ".", self.own_dir)
            _unlink_stale_socket(self.path)
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
        next_eviction = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= next_eviction:  # also under a steady stream of clients
                next_eviction = time.monotonic() + EVICT_EVERY_S
                self.pools.evict_idle()
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
        deadline = time.monotonic() + self.grace
        while self._in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            runs, threads = list(self._runs), list(self._threads)
        if runs:
            log.info("stopping %d requests still in flight", len(runs))
        for run in runs:
            run.end()
        # terminated, their execs end, so the requests streaming them return
        self.pools.close_sandboxes(terminate=not self.keep_sandboxes)
        for thread in threads:
            thread.join(timeout=60)
        self.pools.close(keep_sandboxes=self.keep_sandboxes)  # removes their warm cgroups

    def _in_flight(self) -> bool:
        with self._lock:
            return bool(self._runs)

    # ---- one run ----------------------------------------------------------------------------

    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        run = ClientRun(conn, self.name)
        try:
            with conn:
                if peer_uid(conn) != os.geteuid():
                    log.warning("refused a client of another user")
                    return
                data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3, socket.MSG_CMSG_CLOEXEC)
                if not data:
                    return
                # fds the client did not send: /dev/null, never a descriptor of ours
                fds += [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(3 - len(fds))]
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
            return self._run(run, data, fds)
        except Exception as exc:
            log.exception("run request failed")
            Streams(None, fds[1], fds[2]).say(f"sandpool serve: internal error: {exc!r}")
            return EXIT_CANNOT_START

    def _run(self, run: ClientRun, data: bytes, fds: list[int]) -> int:
        streams = Streams(stdin_fd(fds[0]), fds[1], fds[2])
        try:
            request = parse_request(data)
            if not isinstance(request, RunMessage):  # `sandpool sandbox …`
                return self._sandbox_request(run, request, fds)
            args = run_args(request)
            sandpool = self.pools.check_out(args.config_files, run_environ(request))
        except BadMessage as bad:
            log.warning("refused a bad run request: %s", bad)
            streams.say(f"sandpool serve: bad request: {bad}")
            return EXIT_CANNOT_START
        except SandpoolError as error:
            streams.say(f"{type(error).__name__}: {error}")
            return EXIT_CANNOT_START
        try:
            return self._execute(run, args, sandpool, streams)
        finally:
            self.pools.check_in(sandpool)

    def _execute(self, run: ClientRun, args: RunArgs, sandpool: Sandpool, streams: Streams) -> int:
        watcher = threading.Thread(target=run.watch_client, daemon=True)
        watcher.start()
        code = self._final_status(run, execute(args, sandpool, streams, run.attach), streams)
        container_id = run.container.id if run.container else "-"
        log.info("run %s pool=%s exit=%d", container_id, args.pool, code)
        return code

    def _sandbox_request(self, run: ClientRun, request: Mapping[str, object],
                         fds: list[int]) -> int:  # fmt: skip
        """``sandpool sandbox …``: a structured request (``warm.sandbox_ops``)."""
        try:
            sandpool = self.pools.check_out(*request_config(request))
        except SandpoolError as error:
            Streams(None, fds[1], fds[2]).say(f"{type(error).__name__}: {error}")
            return error.exit_code
        try:
            return serve_sandbox_request(sandpool, request, fds, run.conn)
        finally:
            self.pools.check_in(sandpool)

    @staticmethod
    def _final_status(run: ClientRun, code: int, streams: Streams) -> int:
        if run.stopped_by_server:
            streams.say(f"sandpool: `{run.server_name}` stopped; the container was killed")
            return EXIT_KILLED
        if run.bad_message is not None:
            log.warning("stopped a run on a bad message: %s", run.bad_message)
            streams.say(f"sandpool serve: bad message, the run was stopped: {run.bad_message}")
            return EXIT_CANNOT_START
        if run.signal is not None:
            return 128 + run.signal  # 130 SIGINT, 129 SIGHUP, 143 SIGTERM: as in-process
        return code


def _refuse_non_socket(path: str) -> None:
    """Only a socket (a stale one) may be replaced at ``path``: never a file, link or dir."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # nothing there
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ServeError(
                f"{path} exists and is not a socket; refusing to replace it",
                hint="pass --socket with another path, or remove that file yourself",
            )


def _unlink_stale_socket(path: str) -> None:
    """Remove the socket nobody listens on at ``path`` (anything else stays, and bind fails)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def _private_dir(path: str, own: bool) -> None:
    """Create the socket's directory 0700 (whatever the umask); make it 0700 if it is
    sandpool's own directory and exists already (created by something else)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not own:
            return
    except FileNotFoundError:
        os.makedirs(path, mode=0o700)
    os.chmod(path, 0o700)
