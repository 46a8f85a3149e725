"""``sandpool sandbox …`` requests, served by ``sandpool serve``: structured, not an argv.

One connection per request on the serve socket, carrying the client's fds 0, 1 and 2:

- client -> server: ``{"sandbox": OP, "args": {...}, "config": [...], "cwd": "...",
  "env": {...}}``; later ``{"signal": N}`` (exec: kill it), or EOF (client gone: same).
- server -> client: ``{"result": ...}`` (JSON data the CLI renders), then ``{"exit": N}``.

``exec`` writes the process's stdout and stderr straight to the client's fds 1 and 2 as they
come (and copies fd 0 to its stdin when asked); ``cp`` streams between a host file (opened
here, by the same user: the peer's uid was checked) or fd 0/1 (``-``) and the sandbox. A
SandpoolError is one ``Type: message`` line on the client's fd 2 and its exit status.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sandpool.api import Sandpool
from sandpool.config.paths import CONFIG_ENV_VAR
from sandpool.errors import SandboxError, SandpoolError
from sandpool.sandbox import ExecRequest, SandboxRequest
from sandpool.warm.protocol import MAX_MESSAGE, decode, encode

__all__ = ["request_config", "serve_sandbox_request"]

Reply = tuple[Any, int]
_CHUNK = 1 << 16


def request_config(request: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The client's configuration files (absolute) and ``SANDPOOL_*`` variables."""
    cwd, env = str(request.get("cwd") or "/"), request.get("env") or {}
    environ = {str(k): str(v) for k, v in dict(env).items()}
    if environ.get(CONFIG_ENV_VAR):
        environ[CONFIG_ENV_VAR] = os.path.join(cwd, environ[CONFIG_ENV_VAR])
    files = tuple(os.path.join(cwd, str(f)) for f in request.get("config") or [])
    return files, environ


def serve_sandbox_request(sandpool: Sandpool, request: Mapping[str, Any], fds: list[int],
                          conn: socket.socket) -> int:  # fmt: skip
    """Do one request; its exit status (the reply messages are sent on ``conn``)."""
    op, args = str(request.get("sandbox")), request.get("args") or {}
    handler = OPS.get(op)
    try:
        if handler is None or not isinstance(args, dict):
            raise SandboxError(f"unknown sandbox request {op!r}")
        result, code = handler(sandpool, args, fds, conn)
    except SandpoolError as error:
        with contextlib.suppress(OSError):
            os.write(fds[2], f"{type(error).__name__}: {error}\n".encode())
        return error.exit_code
    conn.send(encode({"result": result}))
    return code


def _create(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    labels = tuple((str(k), str(v)) for k, v in dict(a.get("labels") or {}).items())
    request = SandboxRequest(str(a["pool"]), a.get("image"), a.get("cpu"), a.get("memory"),
                             a.get("pids"), a.get("disk"), tuple(a.get("env") or ()),
                             a.get("workdir"), a.get("ttl"), a.get("idleTimeout"),
                             labels, a.get("network"), _allow(a))  # fmt: skip
    return sp.sandboxes.create(request).to_json(), 0


def _allow(a: dict[str, Any]) -> tuple[str, ...] | None:
    """The ``allow`` entries (None: not given; the pool's, or ``network``'s)."""
    allow = a.get("allow")
    return None if allow is None else tuple(str(x) for x in allow)


def _expose(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    return sp.sandboxes.expose_port(str(a["id"]), a.get("port", 0)).to_json(), 0


def _network(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    info = sp.sandboxes.set_network(str(a["id"]), a.get("network"), _allow(a))
    return info.to_json(), 0


def _list(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    infos = sp.sandboxes.list(a.get("pool"), a.get("labels"), a.get("state"))
    return [info.to_json() for info in infos], 0


def _by_id(action: str) -> Callable[[Sandpool, dict[str, Any], list[int], socket.socket], Reply]:
    def handle(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
        method = getattr(sp.sandboxes, action)
        return method(str(a["id"])).to_json(), 0

    return handle


def _exec(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    sandbox_id, stdin = str(a["id"]), bool(a.get("stdin"))
    request = ExecRequest(tuple(str(x) for x in a["argv"]), tuple(a.get("env") or ()),
                          a.get("cwd"), a.get("timeout"), a.get("user"), stdin)  # fmt: skip
    manager = sp.sandboxes
    exec_id = manager.exec_start(sandbox_id, request)
    kill = lambda: manager.exec_kill(sandbox_id, exec_id)  # noqa: E731
    threading.Thread(target=_kill_on_signal, args=(conn, kill), daemon=True).start()
    if stdin:
        feed = lambda data: manager.exec_write(sandbox_id, exec_id, data)  # noqa: E731
        close = lambda: manager.exec_close_stdin(sandbox_id, exec_id)  # noqa: E731
        threading.Thread(target=_copy_stdin, args=(fds[0], feed, close), daemon=True).start()
    for event in manager.exec_events(sandbox_id, exec_id):
        if event is not None:
            with contextlib.suppress(OSError):  # a closed stdout must not stop the exec
                _write_all(fds[1] if event.stream == "stdout" else fds[2], event.data)
    result = manager.exec_wait(sandbox_id, exec_id)
    assert result is not None
    return result.to_json(), result.exit_code


def _kill_on_signal(conn: socket.socket, kill: Callable[[], None]) -> None:
    """A signal from the client, or its death (EOF), kills the exec."""
    with contextlib.suppress(OSError, ValueError, SandpoolError):
        data = conn.recv(MAX_MESSAGE)
        if not data or isinstance(decode(data).get("signal"), int):
            kill()


def _copy_stdin(fd: int, feed: Callable[[bytes], None], close: Callable[[], None]) -> None:
    with contextlib.suppress(OSError, SandpoolError):
        while data := os.read(fd, _CHUNK):
            feed(data)
    with contextlib.suppress(SandpoolError):
        close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _file_chunks(fd: int) -> Iterator[bytes]:
    while data := os.read(fd, _CHUNK):
        yield data


def _cp(sp: Sandpool, a: dict[str, Any], fds: list[int], conn: socket.socket) -> Reply:
    sandbox_id, path, host = str(a["id"]), str(a["path"]), str(a["host"])
    manager = sp.sandboxes
    try:
        if a.get("direction") == "in":
            with contextlib.ExitStack() as stack:
                fd = fds[0] if host == "-" else stack.enter_context(open(host, "rb")).fileno()
                size = manager.write_file(sandbox_id, path, _file_chunks(fd))
        else:
            with contextlib.ExitStack() as stack:
                fd = fds[1] if host == "-" else stack.enter_context(open(host, "wb")).fileno()
                size = 0
                for chunk in manager.read_file(sandbox_id, path):
                    _write_all(fd, chunk)
                    size += len(chunk)
    except OSError as exc:
        raise SandboxError(f"cp: {host}: {exc.strerror or exc}") from exc
    return {"id": sandbox_id, "path": path, "host": host, "bytes": size}, 0


OPS: dict[str, Callable[[Sandpool, dict[str, Any], list[int], socket.socket], Reply]] = {
    "create": _create,
    "ls": _list,
    "get": _by_id("get"),
    "pause": _by_id("pause"),
    "resume": _by_id("resume"),
    "rm": _by_id("terminate"),
    "exec": _exec,
    "cp": _cp,
    "network": _network,
    "expose": _expose,
}
