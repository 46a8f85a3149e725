"""sandpool's own init for sandboxes: ``init.c`` built static, once per source version.

The binary is bind-mounted read-only at ``MOUNT_POINT`` in every sandbox; it needs nothing
from the image (no shell, no ``sleep``, no libc). It is compiled on first use into
``<stateDir>/bin/sandpool-init-<hash of init.c>`` (``cc -static``; ``./setup.sh`` installs
gcc and libc6-dev) and reused after that; a source change gives a new file name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from sandpool.errors import ContainerStartFailed
from sandpool.worker.owned_files import temp_name

__all__ = ["MOUNT_POINT", "SOURCE", "init_binary"]

SOURCE = Path(__file__).with_name("init.c")
MOUNT_POINT = "/.sandpool/init"
_lock = threading.Lock()


@functools.cache
def _digest() -> str:
    """The source's version, read once per process (a process uses one init throughout)."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def init_binary(state_dir: Path) -> Path:
    """The static init for this source version under ``state_dir``, built if missing."""
    digest = _digest()
    target = state_dir / "bin" / f"sandpool-init-{digest}"
    with _lock:
        if not target.exists():
            _compile(target)
    return target


def _compile(target: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise ContainerStartFailed("sandboxes need a C compiler to build sandpool's init once",
                                   hint="install gcc and libc6-dev (./setup.sh does)")  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)  # named after this process: ``gc`` removes a killed build's
    argv = [compiler, "-static", "-Os", "-s", "-o", str(tmp), str(SOURCE)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerStartFailed(f"cannot build sandpool's init: {exc}") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise ContainerStartFailed(f"cannot build sandpool's init: {detail}",
                                   hint="install libc6-dev (static libc)")  # fmt: skip
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
