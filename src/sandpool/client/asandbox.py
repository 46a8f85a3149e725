"""``AsyncSandbox``: the asyncio twin of ``Sandbox`` (same names, awaited).

    async with AsyncSandbox.create(pool="default", timeout=300) as sb:
        r = await sb.exec(["python3", "-c", "print(42)"])
        await sb.files.write("/data/in.bin", b"...")

``AsyncSandbox.create(...)`` is awaitable (``sb = await AsyncSandbox.create(...)``) and an
async context manager that terminates the sandbox on exit.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import IO, Any

import httpx

from sandpool.client import sandbox_ops as ops
from sandpool.client.aio import AsyncClient
from sandpool.client.sandbox import CHUNK, RECONNECTS, STREAM_TIMEOUT, upload_chunks
from sandpool.client.sandbox_models import ExecResult, FileInfo, OutputChunk, SandboxInfo
from sandpool.client.sandbox_models import StreamCursor as _Cursor
from sandpool.client.transport import Call, error_of, unreachable

__all__ = ["AsyncExecStream", "AsyncSandbox", "AsyncSandboxFiles"]

OnOutput = Callable[[bytes], object] | None
Upload = bytes | str | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]


class AsyncExecStream:
    """One exec's output as it comes (``async for`` it), then its result (``await wait()``);
    it holds a connection until read to its end or closed (``aclose``, or leave an ``async
    with`` block)."""

    def __init__(self, sandbox: AsyncSandbox, exec_id: str,
                 opened: tuple[httpx.Response, AsyncIterator[str]] | None = None,
                 ) -> None:  # fmt: skip
        self.sandbox, self.id = sandbox, exec_id
        self.cursor = _Cursor()
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._opened = opened  # the start's own answer, read before any reconnect

    async def __aenter__(self) -> AsyncExecStream:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()

    async def __aiter__(self) -> AsyncIterator[OutputChunk]:
        async for line in self._lines():
            chunk = self.cursor.feed(line)
            if chunk is not None:
                (self._out if chunk.stream == "stdout" else self._err).append(chunk.data)
                yield chunk

    async def _lines(self) -> AsyncIterator[str]:
        if self._opened is not None:
            try:
                async for line in self._opened[1]:
                    yield line
            except httpx.TransportError:
                pass  # resumed from the cursor below
            finally:
                await self.aclose()
        client, failures = self.sandbox.client, 0
        path = ops.events_path(self.sandbox.id, self.id)
        while self.cursor.exit is None:
            try:
                async with client.http.stream("GET", path, params=self.cursor.params(),
                                              timeout=STREAM_TIMEOUT) as response:  # fmt: skip
                    if not response.is_success:
                        await response.aread()
                        raise error_of(response)
                    async for line in response.aiter_lines():
                        failures = 0
                        yield line
            except httpx.TransportError as exc:
                if failures >= RECONNECTS:
                    raise unreachable(client.endpoint, exc) from exc
            failures += 1
            if self.cursor.exit is None:
                await asyncio.sleep(min(2.0, 0.1 * 2**failures))

    async def aclose(self) -> None:
        """Let go of the output stream's connection (a stream read to its end has)."""
        if self._opened is not None:
            await self._opened[0].aclose()
            self._opened = None

    async def wait(self) -> ExecResult:
        """Read the rest of the output and return how the exec ended, with all its output."""
        async for _ in self:
            pass
        assert self.cursor.exit is not None
        return ExecResult.from_json(self.cursor.exit, b"".join(self._out), b"".join(self._err))

    @property
    def result(self) -> ExecResult | None:
        """How it ended, once the stream has been read to its end."""
        if self.cursor.exit is None:
            return None
        return ExecResult.from_json(self.cursor.exit, b"".join(self._out), b"".join(self._err))

    async def write_stdin(self, data: bytes | str) -> None:
        """Send ``data`` to the exec's stdin."""
        raw = data.encode() if isinstance(data, str) else data
        path = ops.exec_path(self.sandbox.id, self.id) + "/stdin"
        await self.sandbox.client.send(Call("POST", path, lambda d: None, content=raw))

    async def close_stdin(self) -> None:
        """Close the exec's stdin."""
        path = ops.exec_path(self.sandbox.id, self.id) + "/stdin/close"
        await self.sandbox.client.send(Call("POST", path, lambda d: None))

    async def kill(self) -> None:
        """SIGKILL the exec's process group (it ends with 137)."""
        path = ops.exec_path(self.sandbox.id, self.id) + "/kill"
        await self.sandbox.client.send(Call("POST", path, lambda d: None, timeout=60.0))


async def _async_chunks(data: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in data:
        yield chunk


class AsyncSandboxFiles:
    """The files of one sandbox (paths as the sandbox sees them)."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self.sandbox = sandbox

    async def write(self, path: str, data: Upload, mode: int = 0o644) -> int:
        """Write ``data`` to ``path`` (replacing it), streamed; the byte count."""
        client = self.sandbox.client
        params = {"path": path, "mode": f"{mode & 0o7777:o}"}
        body: Any = (_async_chunks(data) if isinstance(data, AsyncIterable)
                     else upload_chunks(data))  # fmt: skip
        try:
            response = await client.http.put(ops.content_path(self.sandbox.id), params=params,
                                             content=body, timeout=None)  # fmt: skip
        except httpx.TransportError as exc:
            raise unreachable(client.endpoint, exc) from exc
        if not response.is_success:
            raise error_of(response)
        return int(response.json()["size"])

    async def read_stream(self, path: str) -> AsyncIterator[bytes]:
        """The bytes of ``path``, in chunks as they come."""
        client = self.sandbox.client
        url, params = ops.content_path(self.sandbox.id), {"path": path}
        try:
            async with client.http.stream("GET", url, params=params,
                                          timeout=STREAM_TIMEOUT) as response:  # fmt: skip
                if not response.is_success:
                    await response.aread()
                    raise error_of(response)
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
        except httpx.TransportError as exc:
            raise unreachable(client.endpoint, exc) from exc

    async def read(self, path: str) -> bytes:
        """The whole content of ``path``."""
        return b"".join([chunk async for chunk in self.read_stream(path)])

    async def list(self, path: str = "/") -> builtins.list[FileInfo]:
        """The entries of the directory ``path``."""
        found: builtins.list[FileInfo] = await self._call("GET", "", params={"path": path})
        return found

    async def stat(self, path: str) -> FileInfo:
        """``path`` itself (symlinks not followed)."""
        found: FileInfo = await self._call("GET", "stat", params={"path": path})
        return found

    async def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file or directory."""
        params = {"path": path, "recursive": str(recursive).lower()}
        await self._call("DELETE", "", params=params)

    async def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a directory."""
        await self._call("POST", "mkdir", json={"path": path, "parents": parents})

    async def rename(self, source: str, destination: str) -> None:
        """Move ``source`` to ``destination``."""
        await self._call("POST", "rename", json={"source": source, "destination": destination})

    async def _call(self, method: str, action: str, **kwargs: Any) -> Any:
        call = ops.files_call(method, self.sandbox.id, action, **kwargs)
        return await self.sandbox.client.send(call)


class _Creating:
    """What ``AsyncSandbox.create`` returns: await it, or ``async with`` it."""

    def __init__(self, make: Callable[[], Awaitable[AsyncSandbox]]) -> None:
        self._make = make
        self._sandbox: AsyncSandbox | None = None

    def __await__(self) -> Generator[Any, None, AsyncSandbox]:
        return self._make().__await__()

    async def __aenter__(self) -> AsyncSandbox:
        self._sandbox = await self._make()
        return self._sandbox

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        assert self._sandbox is not None
        await self._sandbox.__aexit__(kind, exc, tb)


class AsyncSandbox:
    """A sandbox on the server, for asyncio (see ``Sandbox`` for each method)."""

    def __init__(self, info: SandboxInfo, client: AsyncClient, *,
                 owns_client: bool = False) -> None:  # fmt: skip
        self.info, self.client, self._owns_client = info, client, owns_client
        self.files = AsyncSandboxFiles(self)

    @property
    def id(self) -> str:
        """The sandbox id."""
        return self.info.id

    @classmethod
    def create(cls, pool: str = "default", image: str | None = None, *,
               timeout: float | None = None, idle_timeout: float | None = None,
               cpu: float | None = None, memory: str | None = None, pids: int | None = None,
               disk: str | None = None, env: Mapping[str, str] | None = None,
               workdir: str | None = None, labels: Mapping[str, str] | None = None,
               network: str | None = None, allow: Sequence[str] | None = None,
               url: str | None = None, api_key: str | None = None,
               client: AsyncClient | None = None) -> _Creating:  # fmt: skip
        """Start a sandbox of ``pool`` (``timeout``: its TTL in seconds)."""
        call = ops.create(pool=pool, image=image, ttl=timeout, idle_timeout=idle_timeout,
                          cpu=cpu, memory=memory, pids=pids, disk=disk, env=env,
                          workdir=workdir, labels=labels, network=network,
                          allow=allow)  # fmt: skip
        return _Creating(lambda: cls._open(call, url, api_key, client))

    @classmethod
    async def _open(cls, call: Call[SandboxInfo], url: str | None, api_key: str | None,
                    client: AsyncClient | None) -> AsyncSandbox:  # fmt: skip
        owned = client is None
        client = client or AsyncClient(url, api_key)
        try:
            return cls(await client.send(call), client, owns_client=owned)
        except BaseException:
            if owned:
                await client.aclose()
            raise

    @classmethod
    async def connect(cls, sandbox_id: str, *, url: str | None = None,
                      api_key: str | None = None,
                      client: AsyncClient | None = None) -> AsyncSandbox:  # fmt: skip
        """A handle on an existing sandbox of this key's tenant (NotFound otherwise)."""
        return await cls._open(ops.get(sandbox_id), url, api_key, client)

    @classmethod
    async def list(cls, *, labels: Mapping[str, str] | None = None, state: str | None = None,
                   pool: str | None = None, url: str | None = None, api_key: str | None = None,
                   client: AsyncClient | None = None) -> builtins.list[SandboxInfo]:  # fmt: skip
        """This tenant's sandboxes, newest first, with every label of ``labels``."""
        call = ops.list_sandboxes(labels=labels, state=state, pool=pool)
        if client is not None:
            return await client.send(call)
        async with AsyncClient(url, api_key) as own:
            return await own.send(call)

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        try:
            await self.terminate()
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the connection (the sandbox keeps running)."""
        if self._owns_client:
            await self.client.aclose()

    async def _update(self, call: Call[SandboxInfo]) -> SandboxInfo:
        self.info = await self.client.send(call)
        return self.info

    async def refresh(self) -> SandboxInfo:
        """The sandbox's current state."""
        return await self._update(ops.get(self.id))

    async def pause(self) -> SandboxInfo:
        """Freeze it."""
        return await self._update(ops.sandbox_call("POST", self.id, "pause"))

    async def resume(self) -> SandboxInfo:
        """Thaw it."""
        return await self._update(ops.sandbox_call("POST", self.id, "resume"))

    async def set_timeout(self, seconds: float) -> SandboxInfo:
        """End it ``seconds`` from now."""
        return await self._update(ops.sandbox_call("PUT", self.id, "ttl",
                                                   json={"ttl": float(seconds)}))  # fmt: skip

    async def set_network(self, network: str | None = None,
                          allow: Sequence[str] | None = None) -> SandboxInfo:  # fmt: skip
        """Change its network policy while it runs (as ``Sandbox.set_network``)."""
        return await self._update(ops.network_call(self.id, network, allow))

    async def terminate(self) -> SandboxInfo:
        """End it."""
        return await self._update(ops.sandbox_call("DELETE", self.id))

    async def exec_stream(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                          cwd: str | None = None, timeout: float | None = None,
                          user: str | None = None, stdin: bool = False,
                          ) -> AsyncExecStream:  # fmt: skip
        """Start ``command`` and return its output stream (``aclose()`` lets it go)."""
        call = ops.start_exec(self.id, command, env=env, cwd=cwd, timeout=timeout, user=user,
                              stdin=stdin)  # fmt: skip
        response = await self.client.open_stream(ops.stream_exec(call, STREAM_TIMEOUT))
        try:
            lines = response.aiter_lines()
            exec_id = ops.started_exec(await anext(lines, None))
        except httpx.TransportError as exc:
            await response.aclose()
            raise unreachable(self.client.endpoint, exc) from exc
        except BaseException:
            await response.aclose()
            raise
        return AsyncExecStream(self, exec_id, (response, lines))

    async def exec(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, timeout: float | None = None,
                   user: str | None = None, stdin: bytes | str | None = None,
                   on_stdout: OnOutput = None,
                   on_stderr: OnOutput = None) -> ExecResult:  # fmt: skip
        """Run ``command`` to its end: its exit code and output."""
        stream = await self.exec_stream(command, env=env, cwd=cwd, timeout=timeout, user=user,
                                        stdin=stdin is not None)  # fmt: skip
        try:
            if stdin is not None:
                if stdin:
                    await stream.write_stdin(stdin)
                await stream.close_stdin()
            async for chunk in stream:
                callback = on_stdout if chunk.stream == "stdout" else on_stderr
                if callback is not None:
                    callback(chunk.data)
            return await stream.wait()
        finally:
            await stream.aclose()
