"""Permissions of the state dir: no host user but root reaches a container's or an image's files.

    <stateDir>/             0711  root   (traversable: a runc container's root, an unprivileged
    <stateDir>/containers/  0711  root    host uid in its user namespace, must reach its rootfs)
    <stateDir>/containers/<id>/  0700 root, or 0710 root:<the container's host gid> under a
                                 user namespace (only that container's root may pass)
    <stateDir>/images/      0700  root
    <stateDir>/userns/      0700  root

Nothing below a 0700/0710 directory is reachable by other users, whatever its own mode (the
writable layer, the rootfs mount point, setuid files a container made). Installs made before
this had 0755 directories: ``secure_state_dir`` fixes the modes when a state dir is opened.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["PRIVATE_MODES", "let_group_through", "secure_state_dir"]

TRAVERSE_ONLY = 0o711
PRIVATE_MODES = {"": TRAVERSE_ONLY, "containers": TRAVERSE_ONLY, "images": 0o700, "userns": 0o700}
_secured: set[Path] = set()
_lock = threading.Lock()


def _ensure_mode(path: Path, mode: int) -> None:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o7777 != mode:
        path.chmod(mode)


def secure_state_dir(state_dir: Path) -> None:
    """Create the state dir's top directories with the modes above, or fix them; once per
    process and state dir while it exists (a few syscalls, not on every run)."""
    state_dir = Path(state_dir)
    with _lock:
        if state_dir in _secured and (state_dir / "containers").is_dir():
            return
        for sub, mode in PRIVATE_MODES.items():
            _ensure_mode(state_dir / sub if sub else state_dir, mode)
        _secured.add(state_dir)


def let_group_through(path: Path, host_gid: int) -> None:
    """Make a 0700 container directory 0710 for the group ``host_gid``: the container's root
    under a user namespace, which runc's init must let through to the rootfs."""
    os.chown(path, 0, host_gid)
    path.chmod(0o710)
