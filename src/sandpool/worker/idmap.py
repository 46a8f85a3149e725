"""Idmapped mounts: the shared image rootfs (owned by host root) seen as owned by a
container's root, without copying or chowning it.

A user namespace whose ``uid_map``/``gid_map`` are ``0 <host_id> <size>`` is made once per
range and process (a short-lived child unshares it; its ``/proc/<pid>/ns/user`` fd is kept).
``idmapped_tree`` clones the image rootfs as a detached mount (``open_tree``) and marks it
idmapped with that namespace (``mount_setattr(MOUNT_ATTR_IDMAP)``). ``attached_idmap``
attaches it (``move_mount``) at a directory for overlayfs to take as its lower layer, and
detaches it again once the overlay is mounted (overlayfs keeps its own private clone):
Linux before 6.x's detached-layer support (Debian 12's 6.1) refuses a detached mount as a
layer ("overlayfs: failed to clone lowerpath"). Needs Linux ≥ 5.19 (idmapped overlayfs
layers); ``idmap_support`` says whether this kernel has them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["attached_idmap", "idmap_support", "idmapped_tree", "kernel_too_old", "userns_fd"]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
# x86_64 and aarch64 share these numbers (the new mount API is numbered alike everywhere).
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_EMPTY_PATH, AT_FDCWD = 1, 0x1000, -100
MOVE_MOUNT_F_EMPTY_PATH, MNT_DETACH = 0x00000004, 2
MOUNT_ATTR_RDONLY, MOUNT_ATTR_IDMAP = 0x00000001, 0x00100000
CLONE_NEWUSER = 0x10000000

_lock = threading.Lock()
_namespaces: dict[tuple[int, int], int] = {}
_support: dict[int, str | None] = {}


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def _error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _unshared_child() -> tuple[int, int, int]:
    """Fork a child that unshares a user namespace and waits; (pid, ready_r, go_w)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only unshares and waits
        try:
            os.close(go_w)
            os.close(ready_r)
            if _libc.unshare(CLONE_NEWUSER) == 0:
                os.write(ready_w, b"1")
                os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    return pid, ready_r, go_w


def _new_userns(host_id: int, size: int) -> int:
    pid, ready_r, go_w = _unshared_child()
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(errno.EPERM, "unshare(CLONE_NEWUSER) failed")
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{pid}/{name}").write_text(f"0 {host_id} {size}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def userns_fd(host_id: int, size: int) -> int:
    """An fd of a user namespace mapping ``0..size-1`` to ``host_id..``; made once per
    process and kept (a namespace costs the kernel little; making one costs a fork)."""
    with _lock:
        key = (host_id, size)
        if key not in _namespaces:
            _namespaces[key] = _new_userns(host_id, size)
        return _namespaces[key]


def idmapped_tree(path: Path, host_id: int, size: int) -> int:
    """A detached, idmapped, read-only clone of the mount tree at ``path``: an fd the caller
    closes (once overlayfs holds the layer, it keeps it alive)."""
    ns = userns_fd(host_id, size)
    fd = int(
        _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | os.O_CLOEXEC)
    )
    if fd < 0:
        raise _error(f"open_tree {path}")
    # Read-only: overlayfs never writes its lower layer, and nothing else may write (or
    # delete, e.g. a clean-up's rmtree of a crashed container's dir) the image through it.
    attr = _MountAttr(MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, 0, 0, ns)
    if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), 32) < 0:
        err = _error(f"mount_setattr(MOUNT_ATTR_IDMAP) on {path}")
        os.close(fd)
        raise err
    return fd


@contextlib.contextmanager
def attached_idmap(path: Path, host_id: int, size: int, mountpoint: Path) -> Iterator[Path]:
    """``path`` idmapped (``idmapped_tree``) and attached at ``mountpoint`` (a new, empty
    directory) for the duration of the block; then lazily detached and the directory removed,
    also on failure. Mount the overlay inside the block: overlayfs keeps a private clone."""
    fd = idmapped_tree(path, host_id, size)
    mountpoint.mkdir(mode=0o700)
    try:
        try:
            target = os.fsencode(mountpoint)
            if _libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target,
                             MOVE_MOUNT_F_EMPTY_PATH) < 0:  # fmt: skip
                raise _error(f"move_mount {path} to {mountpoint}")
        finally:
            os.close(fd)
        try:
            yield mountpoint
        finally:
            _libc.umount2(os.fsencode(mountpoint), MNT_DETACH)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def kernel_too_old(release: str) -> str | None:
    """Why Linux ``release`` cannot stack overlayfs on idmapped layers (before 5.19); or None."""
    numbers = [int(n) for n in re.findall(r"\d+", release)[:2]]
    if len(numbers) == 2 and tuple(numbers) < (5, 19):
        return f"Linux {release} has no idmapped overlayfs layers (5.19 or later needed)"
    return None


def idmap_support(probe_dir: Path, host_id: int, size: int) -> str | None:
    """None if this kernel can idmap a mount of ``probe_dir``'s filesystem; else why not.
    Probed once per filesystem and process."""
    too_old = kernel_too_old(os.uname().release)
    if too_old:
        return too_old
    device = os.stat(probe_dir).st_dev
    with _lock:
        known = _support.get(device, "")
    if known != "":
        return known
    try:
        os.close(idmapped_tree(probe_dir, host_id, size))
        reason = None
    except OSError as exc:
        reason = f"idmapped mounts unavailable here ({exc.strerror or exc})"
    with _lock:
        _support[device] = reason
    return reason
