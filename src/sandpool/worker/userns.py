"""User namespaces for runc containers: container root is an unprivileged host uid.

Each runc container gets a range of 65536 host uids/gids of its own (``worker.uidrange``),
mapped to 0..65535 inside (``linux.uidMappings``/``gidMappings`` with a new ``user``
namespace; runc creates it together with the others, so the container's network namespace is
owned by it and ``/sys`` can be mounted). The shared image rootfs stays owned by host root on
disk; the overlay's lower layer is an idmapped mount of it (``worker.idmap``), so the
container sees it as its own, and files it writes land in its upper layer owned by its range.
A setuid file it makes is owned by an unprivileged host uid, not root.

Off for gVisor (its Sentry already runs in a user namespace of its own), when
``worker.userNamespaceBase`` is 0, and on kernels without idmapped mounts (``off_reason``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sandpool.errors import ContainerStartFailed
from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.worker import uidrange
from sandpool.worker.idmap import attached_idmap, idmap_support
from sandpool.worker.overlay import mount_overlay

__all__ = ["ContainerUserns", "closed_ancestor", "off_reason", "warn_once"]

log = logging.getLogger(__name__)
_recent: list[int] = []  # ranges this process used (their namespaces are cached): tried first
_recent_lock = threading.Lock()
_warned: set[str] = set()
_open_paths: set[Path] = set()  # state dirs whose ancestors all let others through
IDMAP_DIR = "idmap"  # where a container's idmapped lower layer is attached while it mounts


def off_reason(runtime: ContainerRuntime, base: int, state_dir: Path,
               image_rootfs: Path) -> str | None:  # fmt: skip
    """Why containers of ``runtime`` run without a user namespace; None if they get one."""
    if Capability.USERSPACE_KERNEL in runtime.capabilities:
        return "gVisor: the Sentry runs in a user namespace of its own"
    if base <= 0:
        return "worker.userNamespaceBase is 0 (turned off)"
    if os.geteuid() != 0:
        return "sandpool is not running as root (no uid ranges to map)"
    return closed_ancestor(state_dir) or idmap_support(image_rootfs, base, uidrange.RANGE_SIZE)


def closed_ancestor(state_dir: Path) -> str | None:
    """runc's init, already in the user namespace (an unprivileged host uid), must walk the
    path to the rootfs: every directory above the state dir needs the others' x bit."""
    path = Path(os.path.abspath(state_dir))
    with _recent_lock:
        if path in _open_paths:
            return None
    for parent in path.parents:
        with contextlib.suppress(OSError):
            if not parent.stat().st_mode & 0o001:
                return (f"{parent} is not searchable by other users (mode "
                        f"{parent.stat().st_mode & 0o777:o}), so a container's root cannot "
                        f"reach its rootfs under {path}: chmod o+x {parent}, or move "
                        "worker.stateDir")  # fmt: skip
    with _recent_lock:
        _open_paths.add(path)
    return None


class ContainerUserns:
    """One container's uid range, from allocation to release; used by one thread."""

    def __init__(self, state_dir: Path, container_dir: Path, ids: uidrange.UidRange) -> None:
        self.state_dir, self.container_dir, self.ids = state_dir, container_dir, ids

    @classmethod
    def acquire(cls, state_dir: Path, container_dir: Path, base: int) -> ContainerUserns:
        """Claim a free range for the container of ``container_dir`` (which must exist)."""
        with _recent_lock:
            preferred = list(_recent)
        ids = uidrange.allocate(state_dir, container_dir.name, base, preferred)
        try:
            (container_dir / uidrange.RANGE_FILE).write_text(str(ids.index))
        except BaseException:
            uidrange.release(state_dir, ids.index, container_dir.name)
            raise
        with _recent_lock:
            if ids.index not in _recent:
                _recent.append(ids.index)
        return cls(state_dir, container_dir, ids)

    @property
    def host_id(self) -> int:
        """The host uid and gid of the container's root."""
        return self.ids.host_id

    def idmapped_lower(self, image_rootfs: Path) -> AbstractContextManager[Path]:
        """The image rootfs as the container's root owns it, attached at ``<dir>/idmap``
        while the block runs (see ``worker.idmap.attached_idmap``)."""
        mountpoint = self.container_dir / IDMAP_DIR
        return attached_idmap(image_rootfs, self.ids.host_id, self.ids.size, mountpoint)

    def mount_rootfs(self, image_rootfs: Path) -> Path:
        """The container's overlay over its idmapped view of the image, owned by its root; a
        kernel that refuses it is one clear error (exit 125), not a traceback."""
        try:
            with self.idmapped_lower(image_rootfs) as lower:
                rootfs = mount_overlay(lower, self.container_dir)
        except OSError as exc:
            raise ContainerStartFailed(
                f"cannot mount an overlay over an idmapped image layer on Linux "
                f"{os.uname().release}: {exc.strerror or exc}",
                hint="set worker.userNamespaceBase: 0 to run runc containers without a user "
                "namespace, or use a newer kernel") from exc  # fmt: skip
        self.own_rootfs(rootfs)
        return rootfs

    def own_rootfs(self, rootfs: Path) -> None:
        """Make the mounted rootfs's top directory (the upper layer's) the container root's."""
        os.chown(rootfs, self.ids.host_id, self.ids.host_id)

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with a user namespace mapping 0..65535 to the range."""
        linux = spec.setdefault("linux", {})
        namespaces = linux.setdefault("namespaces", [])
        if not any(ns.get("type") == "user" for ns in namespaces):
            namespaces.append({"type": "user"})
        mapping = [{"containerID": 0, "hostID": self.ids.host_id, "size": self.ids.size}]
        linux["uidMappings"] = mapping
        linux["gidMappings"] = [dict(m) for m in mapping]
        return spec

    def release(self) -> None:
        """Give the range back (after the container and its processes are gone)."""
        uidrange.release(self.state_dir, self.ids.index, self.container_dir.name)


def warn_once(reason: str) -> None:
    """Log, once per process and reason, that runc containers run without a user namespace."""
    if reason not in _warned and not reason.startswith("gVisor"):
        _warned.add(reason)
        log.warning("runc containers run without a user namespace: %s", reason)
