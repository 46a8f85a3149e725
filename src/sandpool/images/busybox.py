"""The smallest image there is: a root filesystem of busybox-static applets (about 2 MB)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sandpool.errors import ImageNotFound

__all__ = ["BUSYBOX_PATHS", "build_busybox_rootfs"]

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var/tmp", "home")


def _find_busybox() -> Path:
    for candidate in BUSYBOX_PATHS:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ImageNotFound(
        "busybox not found at " + " or ".join(BUSYBOX_PATHS),
        hint="install the busybox-static package (./setup.sh does it)",
    )


def _populate(root: Path, busybox: Path) -> None:
    for d in _DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in (
        "sh",
        "true",
        "false",
        "echo",
        "cat",
        "sleep",
        "env",
        "pwd",
        "id",
        "ls",
        "head",
        "dd",
        "yes",
        "mkdir",
        "rm",
        "touch",
        "uname",
        "hostname",
        "ps",
        "kill",
        "wc",
        "seq",
        "grep",
        "tail",
        "test",
        "printf",
        "chmod",
        "whoami",
        "nproc",
        "free",
        "mount",
        "readlink",
        "stat",
        "date",
    ):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


def build_busybox_rootfs(dest: Path) -> Path:
    """Build the busybox rootfs at ``dest`` once (atomically); return ``dest``."""
    if (dest / "bin" / "busybox").exists():
        return dest
    busybox = _find_busybox()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".busybox-", dir=dest.parent))
    try:
        _populate(staging, busybox)
        os.rename(staging, dest)
    except FileExistsError:  # another process won the race; theirs is identical
        pass
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return dest
