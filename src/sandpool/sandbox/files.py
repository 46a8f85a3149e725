"""A sandbox's files, read and written from inside it: each operation is one exec of
sandpool's init (``put``, ``get``, ``ls``, ``stat``, ``mkdir``, ``rm``, ``mv``) as root.

Why from inside rather than through the overlay on the host: paths are then resolved by the
sandbox's own kernel (runc) or Sentry (gVisor), in its mount namespace, so ``..`` and
symlinks can never leave its root, whatever the sandbox did to its filesystem in between;
what an exec just wrote is what a read sees, and what is written is seen by the next exec,
on both runtimes (gVisor caches directory entries and does not see writes made to the
overlay behind its back); writes count against the sandbox's disk limit and fail with
ENOSPC there. Content streams through the exec's stdin/stdout in 64 KiB chunks: a 1 GiB file
never needs 1 GiB of memory. The cost is one exec per operation (see the README's figures).
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import posixpath
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sandpool.errors import SandboxError, SandboxFileError
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.runner import kill_group, spawn
from sandpool.sandbox.init_binary import MOUNT_POINT

__all__ = ["FileEntry", "SandboxFiles", "Source"]

CHUNK = 1 << 16
Source = bytes | IO[bytes] | Iterable[bytes]
_ERROR = re.compile(rb"^sandpool-init: (\d+) ", re.MULTILINE)
_TYPES = {"f": "file", "d": "dir", "l": "symlink", "o": "other"}


@dataclass(frozen=True)
class FileEntry:
    """One file as ``list``/``stat`` report it (symlinks are not followed)."""

    name: str
    path: str
    type: str  # file, dir, symlink, other
    mode: int
    size: int
    mtime: float

    def to_json(self) -> dict[str, Any]:
        """The camelCase view."""
        return {"name": self.name, "path": self.path, "type": self.type,
                "mode": oct(self.mode), "size": self.size, "mtime": self.mtime}  # fmt: skip


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for i in range(0, len(view), CHUNK):
            yield bytes(view[i : i + CHUNK])
    elif hasattr(source, "read"):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        yield from source


class SandboxFiles:
    """File operations in one running sandbox (thread safe: each is its own exec)."""

    def __init__(self, runtime: ContainerRuntime, sandbox_id: str, workdir: str = "/") -> None:
        self.runtime, self.sandbox_id, self.workdir = runtime, sandbox_id, workdir

    def resolve(self, path: str) -> str:
        """``path`` as the sandbox sees it (relative to its workdir); ValueError-free: a bad
        path is a SandboxFileError naming it."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise SandboxFileError(f"bad sandbox path {path!r}: empty or contains NUL",
                                   errno=errnos.EINVAL)  # fmt: skip
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def _spawn(self, *args: str, stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        argv = self.runtime.argv("exec", "--cwd", "/", "--user", "0:0", self.sandbox_id,
                                 MOUNT_POINT, *args)  # fmt: skip
        return spawn(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _call(self, op: str, path: str, *args: str) -> bytes:
        proc = self._spawn(op, path, *args)
        out, err = proc.communicate()
        self._check(proc.returncode, err, op, path)
        return out

    def _check(self, status: int, stderr: bytes, op: str, path: str) -> None:
        if status == 0:
            return
        match = _ERROR.search(stderr)
        if match is None:
            detail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [str(status)]
            raise SandboxError(f"{op} {path} in sandbox {self.sandbox_id} failed: {detail[0]}")
        number = int(match[1])
        message = f"{op} {path}: {errnos.errorcode.get(number, number)} ({os.strerror(number)})"
        hint = None
        if number == errnos.ENOSPC:
            hint = "the sandbox's disk limit is full: remove files, or create it with a larger disk"
        raise SandboxFileError(message, errno=number, hint=hint)

    def write(self, path: str, source: Source, mode: int = 0o644) -> int:
        """Write ``source`` (bytes, a binary file or an iterable of chunks) to ``path``,
        replacing it; the byte count. Streams: memory stays at one chunk."""
        target = self.resolve(path)
        proc = self._spawn("put", target, f"{mode & 0o7777:o}", stdin=subprocess.PIPE)
        assert proc.stdin is not None
        total = 0
        try:
            for chunk in _chunks(source):
                proc.stdin.write(chunk)
                total += len(chunk)
        except BrokenPipeError:
            pass  # it stopped reading: its error (e.g. ENOSPC) is on stderr
        except BaseException:
            kill_group(proc)
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read()  # ``put`` writes nothing there; its errors go to stderr
        err = proc.stderr.read()
        self._check(proc.wait(), err, "write", target)
        return total

    def read(self, path: str) -> Iterator[bytes]:
        """The content of ``path`` in chunks (SandboxFileError before the first chunk if it
        cannot be read). Closing the iterator early stops the exec."""
        target = self.resolve(path)
        proc = self._spawn("get", target)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            first = os.read(proc.stdout.fileno(), CHUNK)
            if not first:
                err = proc.stderr.read()
                self._check(proc.wait(), err, "read", target)
                return
            yield first
            while chunk := os.read(proc.stdout.fileno(), CHUNK):
                yield chunk
            err = proc.stderr.read()
            self._check(proc.wait(), err, "read", target)
        finally:
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path`` (for small files; ``read`` streams)."""
        return b"".join(self.read(path))

    def stat(self, path: str) -> FileEntry:
        """``path`` itself (a symlink is reported as one, not followed)."""
        target = self.resolve(path)
        entries = _entries(self._call("stat", target), posixpath.dirname(target))
        entry = entries[0]
        return FileEntry(posixpath.basename(target) or "/", target, entry.type, entry.mode,
                         entry.size, entry.mtime)  # fmt: skip

    def list(self, path: str) -> list[FileEntry]:
        """The entries of the directory ``path``, sorted by name."""
        target = self.resolve(path)
        return sorted(_entries(self._call("ls", target), target), key=lambda e: e.name)

    def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a directory (``parents``: and missing parents, no error if it exists)."""
        self._call("mkdir", self.resolve(path), "1" if parents else "0")

    def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file, symlink or empty directory (``recursive``: a whole tree)."""
        self._call("rm", self.resolve(path), "1" if recursive else "0")

    def rename(self, source: str, destination: str) -> None:
        """Move ``source`` to ``destination`` (replacing a file there)."""
        self._call("mv", self.resolve(source), self.resolve(destination))


def _entries(output: bytes, directory: str) -> list[FileEntry]:
    entries = []
    for raw in output.split(b"\0"):
        if not raw:
            continue
        kind, mode, size, mtime, name = raw.split(b" ", 4)
        text = name.decode(errors="surrogateescape")
        entries.append(FileEntry(text, posixpath.join(directory, text), _TYPES[kind.decode()],
                                 int(mode, 8), int(size), int(mtime) / 1e9))  # fmt: skip
    return entries
