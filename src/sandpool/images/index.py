"""The cache's table of contents: ``images/index.json``, reference key -> digest -> image record.

Readers take no lock: the file is only ever replaced by an atomic rename, so a reader sees the
old or the new version, never half of one, and a process re-parses it only when its inode or
mtime changed. Writers serialise on ``images/index.lock`` (fcntl.flock, released if the holder
dies) and re-read under the lock before they change anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ImageIndex", "file_lock"]

_VERSION = 1


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (created if missing); yield whether it was taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _empty() -> dict[str, Any]:
    return {"version": _VERSION, "references": {}, "images": {}}


class ImageIndex:
    """Reads and atomically rewrites one index file; safe across threads and processes."""

    def __init__(self, root: Path) -> None:
        self.path = root / "index.json"
        self.lock_path = root / "index.lock"
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def read(self) -> dict[str, Any]:
        """The current index (treat as read-only); parsed again only when the file changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return _empty()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._cached
        if cached is not None and cached[0] == stamp:
            return cached[1]
        data = self._parse()
        self._cached = (stamp, data)
        return data

    def _parse(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return _empty()
        except ValueError:  # never written half (atomic rename); treat a hand-broken file as empty
            return _empty()
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return _empty()
        return data

    @contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """Lock, yield a fresh copy to change in place, then write it back atomically."""
        with file_lock(self.lock_path):
            data = self._parse()
            yield data
            self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
