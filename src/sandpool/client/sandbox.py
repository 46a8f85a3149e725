"""``Sandbox``: a long-lived sandbox on a sandpool server, blocking (``AsyncSandbox`` is the
asyncio twin, same names).

    from sandpool.client import Sandbox
    with Sandbox.create(pool="default", timeout=300) as sb:   # $SANDPOOL_URL, $SANDPOOL_API_KEY
        r = sb.exec(["python3", "-c", "print(42)"])           # r.exit_code, r.stdout, ...
        sb.files.write("/data/in.bin", b"...")

Leaving the ``with`` block terminates the sandbox. An exec's output streams as it comes
(``exec_stream``, or ``on_stdout``/``on_stderr`` callbacks of ``exec``); a dropped
connection is resumed from the last offset read, so no byte is lost or repeated. Only calls
that are safe to repeat are retried (see ``transport``); a create or an exec start is sent once.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import httpx

from sandpool.client import sandbox_ops as ops
from sandpool.client.sandbox_models import ExecResult, FileInfo, OutputChunk, SandboxInfo
from sandpool.client.sandbox_models import StreamCursor as _Cursor
from sandpool.client.sync import Client
from sandpool.client.transport import Call, error_of, unreachable

__all__ = ["ExecStream", "Sandbox", "SandboxFiles"]

CHUNK = 1 << 16
RECONNECTS = 5  # tries in a row without a line read before a stream gives up
STREAM_TIMEOUT = httpx.Timeout(30.0, read=120.0)  # the server sends a keepalive every 10 s
OnOutput = Callable[[bytes], object] | None


def upload_chunks(data: bytes | str | IO[bytes] | Iterable[bytes]) -> bytes | Iterator[bytes]:
    """What httpx sends for ``data``: bytes whole, anything else streamed in chunks."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if hasattr(data, "read"):
        source = data

        def chunks() -> Iterator[bytes]:
            while chunk := source.read(CHUNK):
                yield chunk

        return chunks()
    return iter(data)


class ExecStream:
    """One exec's output as it comes (iterate it for ``OutputChunk``s), then its ``result``
    (``wait``). Its stdin: ``write_stdin``/``close_stdin`` (started with ``stdin=True``).
    It holds a connection until read to its end or closed (``close``, or leave a ``with``
    block); the exec itself goes on either way."""

    def __init__(self, sandbox: Sandbox, exec_id: str,
                 opened: tuple[httpx.Response, Iterator[str]] | None = None) -> None:  # fmt: skip
        self.sandbox, self.id = sandbox, exec_id
        self.cursor = _Cursor()
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._opened = opened  # the start's own answer, read before any reconnect

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def __iter__(self) -> Iterator[OutputChunk]:
        for line in self._lines():
            chunk = self.cursor.feed(line)
            if chunk is not None:
                (self._out if chunk.stream == "stdout" else self._err).append(chunk.data)
                yield chunk

    def _lines(self) -> Iterator[str]:
        if self._opened is not None:
            response, lines = self._opened
            try:
                yield from lines
            except httpx.TransportError:
                pass  # resumed from the cursor below
            finally:
                self.close()
        client, failures = self.sandbox.client, 0
        path = ops.events_path(self.sandbox.id, self.id)
        while self.cursor.exit is None:
            try:
                with client.http.stream("GET", path, params=self.cursor.params(),
                                        timeout=STREAM_TIMEOUT) as response:  # fmt: skip
                    if not response.is_success:
                        response.read()
                        raise error_of(response)
                    for line in response.iter_lines():
                        failures = 0
                        yield line
            except httpx.TransportError as exc:
                if failures >= RECONNECTS:
                    raise unreachable(client.endpoint, exc) from exc
            failures += 1
            if self.cursor.exit is None:
                time.sleep(min(2.0, 0.1 * 2**failures))

    def close(self) -> None:
        """Let go of the output stream's connection (a stream read to its end has)."""
        if self._opened is not None:
            self._opened[0].close()
            self._opened = None

    def wait(self) -> ExecResult:
        """Read the rest of the output and return how the exec ended, with all its output."""
        for _ in self:
            pass
        assert self.cursor.exit is not None
        return ExecResult.from_json(self.cursor.exit, b"".join(self._out), b"".join(self._err))

    @property
    def result(self) -> ExecResult | None:
        """How it ended, once the stream has been read to its end."""
        if self.cursor.exit is None:
            return None
        return ExecResult.from_json(self.cursor.exit, b"".join(self._out), b"".join(self._err))

    def write_stdin(self, data: bytes | str) -> None:
        """Send ``data`` to the exec's stdin."""
        raw = data.encode() if isinstance(data, str) else data
        path = ops.exec_path(self.sandbox.id, self.id) + "/stdin"
        self.sandbox.client.send(Call("POST", path, lambda d: None, content=raw))

    def close_stdin(self) -> None:
        """Close the exec's stdin (it reads end of file)."""
        path = ops.exec_path(self.sandbox.id, self.id) + "/stdin/close"
        self.sandbox.client.send(Call("POST", path, lambda d: None))

    def kill(self) -> None:
        """SIGKILL the exec's process group (it ends with 137)."""
        path = ops.exec_path(self.sandbox.id, self.id) + "/kill"
        self.sandbox.client.send(Call("POST", path, lambda d: None, timeout=60.0))


class SandboxFiles:
    """The files of one sandbox (paths as the sandbox sees them)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def write(self, path: str, data: bytes | str | IO[bytes] | Iterable[bytes],
              mode: int = 0o644) -> int:  # fmt: skip
        """Write ``data`` to ``path`` (replacing it), streamed; the byte count."""
        client = self.sandbox.client
        params = {"path": path, "mode": f"{mode & 0o7777:o}"}
        try:
            response = client.http.put(ops.content_path(self.sandbox.id), params=params,
                                       content=upload_chunks(data), timeout=None)  # fmt: skip
        except httpx.TransportError as exc:
            raise unreachable(client.endpoint, exc) from exc
        if not response.is_success:
            raise error_of(response)
        return int(response.json()["size"])

    def read_stream(self, path: str) -> Iterator[bytes]:
        """The bytes of ``path``, in chunks as they come."""
        client = self.sandbox.client
        try:
            url, params = ops.content_path(self.sandbox.id), {"path": path}
            with client.http.stream("GET", url, params=params,
                                    timeout=STREAM_TIMEOUT) as response:  # fmt: skip
                if not response.is_success:
                    response.read()
                    raise error_of(response)
                yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as exc:
            raise unreachable(client.endpoint, exc) from exc

    def read(self, path: str) -> bytes:
        """The whole content of ``path``."""
        return b"".join(self.read_stream(path))

    def list(self, path: str = "/") -> builtins.list[FileInfo]:
        """The entries of the directory ``path``."""
        found: builtins.list[FileInfo] = self._call("GET", "", params={"path": path})
        return found

    def stat(self, path: str) -> FileInfo:
        """``path`` itself (symlinks not followed)."""
        found: FileInfo = self._call("GET", "stat", params={"path": path})
        return found

    def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file or directory."""
        self._call("DELETE", "", params={"path": path, "recursive": str(recursive).lower()})

    def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a directory."""
        self._call("POST", "mkdir", json={"path": path, "parents": parents})

    def rename(self, source: str, destination: str) -> None:
        """Move ``source`` to ``destination``."""
        self._call("POST", "rename", json={"source": source, "destination": destination})

    def _call(self, method: str, action: str, **kwargs: Any) -> Any:
        return self.sandbox.client.send(ops.files_call(method, self.sandbox.id, action, **kwargs))


class Sandbox:
    """A sandbox on the server (see the module docstring); ``files`` are its files."""

    def __init__(self, info: SandboxInfo, client: Client, *, owns_client: bool = False) -> None:
        self.info, self.client, self._owns_client = info, client, owns_client
        self.files = SandboxFiles(self)

    @property
    def id(self) -> str:
        """The sandbox id (``Sandbox.connect`` takes it)."""
        return self.info.id

    @classmethod
    def create(cls, pool: str = "default", image: str | None = None, *,
               timeout: float | None = None, idle_timeout: float | None = None,
               cpu: float | None = None, memory: str | None = None, pids: int | None = None,
               disk: str | None = None, env: Mapping[str, str] | None = None,
               workdir: str | None = None, labels: Mapping[str, str] | None = None,
               network: str | None = None, allow: Sequence[str] | None = None,
               url: str | None = None, api_key: str | None = None,
               client: Client | None = None) -> Sandbox:  # fmt: skip
        """Start a sandbox of ``pool``; ``timeout``: seconds it lives (its TTL, from ready);
        ``idle_timeout``: seconds without an exec or file call before it is ended."""
        owned = client is None
        client = client or Client(url, api_key)
        call = ops.create(pool=pool, image=image, ttl=timeout, idle_timeout=idle_timeout,
                          cpu=cpu, memory=memory, pids=pids, disk=disk, env=env,
                          workdir=workdir, labels=labels, network=network,
                          allow=allow)  # fmt: skip
        try:
            return cls(client.send(call), client, owns_client=owned)
        except BaseException:
            if owned:
                client.close()
            raise

    @classmethod
    def connect(cls, sandbox_id: str, *, url: str | None = None, api_key: str | None = None,
                client: Client | None = None) -> Sandbox:  # fmt: skip
        """A handle on an existing sandbox of this key's tenant (NotFound otherwise)."""
        owned = client is None
        client = client or Client(url, api_key)
        try:
            return cls(client.send(ops.get(sandbox_id)), client, owns_client=owned)
        except BaseException:
            if owned:
                client.close()
            raise

    @classmethod
    def list(cls, *, labels: Mapping[str, str] | None = None, state: str | None = None,
             pool: str | None = None, url: str | None = None, api_key: str | None = None,
             client: Client | None = None) -> builtins.list[SandboxInfo]:  # fmt: skip
        """This tenant's sandboxes, newest first, with every label of ``labels``."""
        if client is not None:
            return client.send(ops.list_sandboxes(labels=labels, state=state, pool=pool))
        with Client(url, api_key) as own:
            return own.send(ops.list_sandboxes(labels=labels, state=state, pool=pool))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        try:
            self.terminate()
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection (the sandbox keeps running; ``terminate`` ends it)."""
        if self._owns_client:
            self.client.close()

    def refresh(self) -> SandboxInfo:
        """The sandbox's current state (also kept in ``info``)."""
        self.info = self.client.send(ops.get(self.id))
        return self.info

    def pause(self) -> SandboxInfo:
        """Freeze it."""
        self.info = self.client.send(ops.sandbox_call("POST", self.id, "pause"))
        return self.info

    def resume(self) -> SandboxInfo:
        """Thaw it."""
        self.info = self.client.send(ops.sandbox_call("POST", self.id, "resume"))
        return self.info

    def set_timeout(self, seconds: float) -> SandboxInfo:
        """End it ``seconds`` from now."""
        call = ops.sandbox_call("PUT", self.id, "ttl", json={"ttl": float(seconds)})
        self.info = self.client.send(call)
        return self.info

    def set_network(self, network: str | None = None,
                    allow: Sequence[str] | None = None) -> SandboxInfo:  # fmt: skip
        """Change its network policy while it runs (``allow`` entries: CIDR, HOST[:PORT],
        domain; only a sandbox created with a network can change, and not to ``none``)."""
        self.info = self.client.send(ops.network_call(self.id, network, allow))
        return self.info

    def terminate(self) -> SandboxInfo:
        """End it (an ended one is answered as it is)."""
        self.info = self.client.send(ops.sandbox_call("DELETE", self.id))
        return self.info

    def exec_stream(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None, timeout: float | None = None,
                    user: str | None = None, stdin: bool = False) -> ExecStream:  # fmt: skip
        """Start ``command`` and return its output stream (iterate it; ``wait()`` for the
        result, or ``close()`` to let it go); ``stdin=True`` keeps its stdin open for
        ``write_stdin``. One request starts it and streams its output."""
        call = ops.start_exec(self.id, command, env=env, cwd=cwd, timeout=timeout, user=user,
                              stdin=stdin)  # fmt: skip
        response = self.client.open_stream(ops.stream_exec(call, STREAM_TIMEOUT))
        try:
            lines = response.iter_lines()
            exec_id = ops.started_exec(next(lines, None))
        except httpx.TransportError as exc:
            response.close()
            raise unreachable(self.client.endpoint, exc) from exc
        except BaseException:
            response.close()
            raise
        return ExecStream(self, exec_id, (response, lines))

    def exec(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
             cwd: str | None = None, timeout: float | None = None, user: str | None = None,
             stdin: bytes | str | None = None, on_stdout: OnOutput = None,
             on_stderr: OnOutput = None) -> ExecResult:  # fmt: skip
        """Run ``command`` to its end: its exit code and output (``on_stdout``/``on_stderr``
        get each chunk as it comes)."""
        stream = self.exec_stream(command, env=env, cwd=cwd, timeout=timeout, user=user,
                                  stdin=stdin is not None)  # fmt: skip
        try:
            if stdin is not None:
                if stdin:
                    stream.write_stdin(stdin)
                stream.close_stdin()
            for chunk in stream:
                callback = on_stdout if chunk.stream == "stdout" else on_stderr
                if callback is not None:
                    callback(chunk.data)
            return stream.wait()
        finally:
            stream.close()
