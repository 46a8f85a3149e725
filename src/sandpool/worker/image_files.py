"""Reading a file of an image on the host, strictly inside the image's root.

An image is untrusted: its ``/etc/passwd`` may be a symlink to ``/etc/shadow`` (the host's, if
followed naively), to ``/dev/zero``, or a FIFO. Paths are resolved with ``openat2`` and
``RESOLVE_IN_ROOT`` (absolute symlinks and ``..`` stay inside the rootfs, as they would in the
container), or, on kernels without ``openat2`` (before 5.6), component by component with
``O_NOFOLLOW`` (any symlink is refused). Only a regular file is read (opened non-blocking, so
a FIFO cannot hang the caller), and at most ``limit`` bytes of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from pathlib import Path

from sandpool.errors import InvalidImage

__all__ = ["MAX_IMAGE_FILE", "read_image_file"]

MAX_IMAGE_FILE = 1 << 20
_SYS_OPENAT2 = 437  # the same number on every architecture (added after the unified table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_libc = ctypes.CDLL(None, use_errno=True)


def _openat2(root_fd: int, relative: str) -> int:
    """``openat2(root_fd, relative, RESOLVE_IN_ROOT)``; OSError(ENOSYS) where it is missing."""
    how = struct.pack("QQQ", _FLAGS, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = int(_libc.syscall(_SYS_OPENAT2, root_fd, relative.encode(), how, len(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), relative)
    return fd


def _open_without_symlinks(root_fd: int, relative: str) -> int:
    """Open ``relative`` under ``root_fd`` one component at a time, refusing every symlink."""
    *parents, last = [part for part in relative.split("/") if part not in ("", ".")]
    fd = os.dup(root_fd)
    try:
        for part in parents:
            if part == "..":
                raise OSError(errno.EXDEV, "'..' in an image path", relative)
            next_fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(last, _FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


def _open_in_root(rootfs: Path, relative: str) -> int:
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            return _openat2(root_fd, relative)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp filter
                raise
        return _open_without_symlinks(root_fd, relative)
    finally:
        os.close(root_fd)


def read_image_file(rootfs: Path, path: str, limit: int = MAX_IMAGE_FILE) -> bytes | None:
    """The content of ``path`` (e.g. ``/etc/passwd``) in the image at ``rootfs``, resolved
    inside it; None if it does not exist there; InvalidImage if it is not a regular file or
    is larger than ``limit`` bytes."""
    try:
        fd = _open_in_root(rootfs, path.lstrip("/"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidImage(f"the image's {path} cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidImage(f"the image's {path} is not a regular file")
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidImage(f"the image's {path} is larger than {limit} bytes")
    return data


def _read_at_most(fd: int, count: int) -> bytes:
    chunks, total = [], 0
    while total < count:
        chunk = os.read(fd, count - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)
