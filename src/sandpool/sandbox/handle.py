"""``Sandbox``: a handle on one sandbox for Python callers (the manager works by id).

    with sp.create_sandbox("default", ttl=300) as sb:
        result = sb.exec(["python3", "-c", "print(42)"])
        sb.files.write("/data/in.bin", b"...")
        for event in sb.stream(["sh", "-c", "echo hi; echo oops >&2"]):
            ...

Leaving the ``with`` block terminates the sandbox. A handle is as thread safe as the
manager: share it freely.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType

from sandpool.sandbox.files import FileEntry, Source
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import ExecRequest, ExecResult, OutputEvent, SandboxInfo

__all__ = ["Sandbox", "SandboxFilesHandle"]


def exec_request(argv: Sequence[str], env: Sequence[str] = (), cwd: str | None = None,
                 timeout: float | None = None, user: str | None = None,
                 stdin: bool = False) -> ExecRequest:  # fmt: skip
    """An ``ExecRequest`` from keyword arguments."""
    return ExecRequest(tuple(argv), tuple(env), cwd, timeout, user, stdin)


class SandboxFilesHandle:
    """``sb.files``: the sandbox's filesystem (paths relative to its workdir)."""

    def __init__(self, manager: SandboxManager, sandbox_id: str) -> None:
        self._m, self._id = manager, sandbox_id

    def write(self, path: str, data: Source, mode: int = 0o644) -> int:
        """Write bytes, a binary file or an iterable of chunks; the byte count."""
        return self._m.write_file(self._id, path, data, mode)

    def read(self, path: str) -> bytes:
        """The whole file (``stream`` for big ones)."""
        return b"".join(self._m.read_file(self._id, path))

    def stream(self, path: str) -> Iterator[bytes]:
        """The file in chunks."""
        return self._m.read_file(self._id, path)

    def list(self, path: str = ".") -> list[FileEntry]:
        """A directory's entries."""
        return self._m.list_files(self._id, path)

    def stat(self, path: str) -> FileEntry:
        """One path (symlinks not followed)."""
        return self._m.stat_file(self._id, path)

    def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a directory."""
        self._m.make_dir(self._id, path, parents)

    def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file or a directory."""
        self._m.remove_file(self._id, path, recursive)

    def rename(self, source: str, destination: str) -> None:
        """Move a file or a directory."""
        self._m.rename_file(self._id, source, destination)


class Sandbox:
    """One sandbox, by id, through its manager."""

    def __init__(self, manager: SandboxManager, sandbox_id: str) -> None:
        self.manager, self.id = manager, sandbox_id
        self.files = SandboxFilesHandle(manager, sandbox_id)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.terminate()

    def info(self) -> SandboxInfo:
        """Its current state."""
        return self.manager.get(self.id)

    def exec(self, argv: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None,
             timeout: float | None = None, user: str | None = None,
             stdin: bytes | None = None) -> ExecResult:  # fmt: skip
        """Run ``argv`` to the end; the result holds its output."""
        request = exec_request(argv, env, cwd, timeout, user)
        return self.manager.exec(self.id, request, stdin)

    def stream(self, argv: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None,
               timeout: float | None = None,
               user: str | None = None) -> Iterator[OutputEvent | ExecResult]:  # fmt: skip
        """Run ``argv``, yielding its output events as they come, then its result."""
        return self.manager.stream(self.id, exec_request(argv, env, cwd, timeout, user))

    def start(self, argv: Sequence[str], *, env: Sequence[str] = (), cwd: str | None = None,
              timeout: float | None = None, user: str | None = None,
              stdin: bool = False) -> str:  # fmt: skip
        """Start ``argv`` in the background; its exec id (``attach``, ``wait``, ``kill``)."""
        return self.manager.exec_start(self.id, exec_request(argv, env, cwd, timeout, user, stdin))

    def attach(self, exec_id: str, stdout_from: int = 0,
               stderr_from: int = 0) -> Iterator[OutputEvent]:  # fmt: skip
        """A background exec's output from these offsets on, until it ended."""
        for event in self.manager.exec_events(self.id, exec_id, stdout_from, stderr_from):
            if event is not None:
                yield event

    def wait(self, exec_id: str, timeout: float | None = None) -> ExecResult | None:
        """A background exec's result (None if ``timeout`` passed first)."""
        return self.manager.exec_wait(self.id, exec_id, timeout)

    def write_stdin(self, exec_id: str, data: bytes) -> None:
        """Write to a background exec's stdin."""
        self.manager.exec_write(self.id, exec_id, data)

    def close_stdin(self, exec_id: str) -> None:
        """Close a background exec's stdin."""
        self.manager.exec_close_stdin(self.id, exec_id)

    def kill(self, exec_id: str) -> None:
        """Kill a background exec (137)."""
        self.manager.exec_kill(self.id, exec_id)

    def set_network(self, network: str | None, allow: Sequence[str] | None = None) -> SandboxInfo:
        """Change its network policy now (``SandboxManager.set_network``)."""
        return self.manager.set_network(self.id, network, allow)

    def expose_port(self, port: int) -> tuple[str, int]:
        """Make its TCP ``port`` reachable on the host's loopback; (host, host port)."""
        info = self.manager.expose_port(self.id, port)
        return next((h, hp) for p, h, hp in info.ports if p == port)

    def pause(self) -> SandboxInfo:
        """Freeze it."""
        return self.manager.pause(self.id)

    def resume(self) -> SandboxInfo:
        """Thaw it."""
        return self.manager.resume(self.id)

    def checkpoint(self) -> SandboxInfo:
        """Dump its processes to disk (CRIU, runc only) and stop them."""
        return self.manager.checkpoint(self.id)

    def restore(self) -> SandboxInfo:
        """Start its checkpointed processes again, memory and all."""
        return self.manager.restore(self.id)

    def terminate(self) -> SandboxInfo:
        """End it and remove everything it held."""
        return self.manager.terminate(self.id)
