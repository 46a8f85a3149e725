"""Checkpoint and restore of a sandbox's container with CRIU (``runc checkpoint``/``restore``).

``dump`` writes every process of the sandbox (memory, registers, open files, its namespaces)
into ``<container dir>/checkpoint`` and stops the container: runc forgets it and removes its
own cgroup. What sandpool made for it stays: the bundle (``config.json``), the overlay root
on its disk, the parent cgroup with its limits. ``undump`` starts the same processes again
from those images, under the same id, detached, and removes the images (they are used
once). Where CRIU fails, the error quotes the ``Error`` lines of its log (``dump.log`` or
``restore.log`` next to the images), since runc's own message only names that file.

Only a runtime with ``Capability.CHECKPOINT_RESTORE`` can do it: runc with ``criu``
installed. gVisor has its own ``runsc checkpoint``, which sandpool does not drive.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sandpool.errors import CheckpointFailed, OperationNotSupported, RuntimeCommandFailed
from sandpool.runtime.base import Capability, ContainerRuntime

__all__ = ["CHECKPOINT_DIR", "criu_errors", "dump", "require_checkpoints", "undump"]

CHECKPOINT_DIR = "checkpoint"
ERROR_LINES = 4  # CRIU's last error lines quoted in a failure
_ERROR = re.compile(r"^\([0-9. ]+\) (Error \(.*)$")


def require_checkpoints(runtime: ContainerRuntime, sandbox_id: str) -> None:
    """OperationNotSupported, naming the runtime and the fix, unless it can checkpoint."""
    if Capability.CHECKPOINT_RESTORE in runtime.capabilities:
        return
    what = f"cannot checkpoint sandbox {sandbox_id}"
    if runtime.name == "runc":
        raise OperationNotSupported(f"{what}: runc needs CRIU and `criu` is not installed",
                                    hint="apt-get install criu")  # fmt: skip
    raise OperationNotSupported(f"{what}: checkpoint is not supported by {runtime.name}",
                                hint="use a pool whose containerRuntime is runc")  # fmt: skip


def images_of(directory: Path) -> Path:
    """Where the checkpoint of the sandbox whose container dir is ``directory`` is kept."""
    return directory / CHECKPOINT_DIR


def dump(runtime: ContainerRuntime, sandbox_id: str, directory: Path) -> None:
    """Checkpoint the running container and stop it (CheckpointFailed: it still runs)."""
    images = images_of(directory)
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(mode=0o700)
    try:
        runtime.checkpoint(sandbox_id, images)
    except RuntimeCommandFailed as exc:
        raise _failed("checkpoint", sandbox_id, exc, images / "dump.log") from exc


def undump(runtime: ContainerRuntime, sandbox_id: str, directory: Path) -> int:
    """Restore the checkpointed container, detached; its new host pid. The images are
    removed once it runs; on CheckpointFailed they stay (restore may be tried again)."""
    images = images_of(directory)
    pid_file = directory / "pid"
    pid_file.unlink(missing_ok=True)
    try:
        runtime.restore(sandbox_id, directory, images, pid_file=pid_file)
    except RuntimeCommandFailed as exc:
        raise _failed("restore", sandbox_id, exc, images / "restore.log") from exc
    shutil.rmtree(images, ignore_errors=True)
    return int(pid_file.read_text().strip())


def criu_errors(log: Path, limit: int = ERROR_LINES) -> list[str]:
    """The last ``limit`` ``Error (file:line): …`` lines of a CRIU log (none if unreadable)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [m[1] for m in map(_ERROR.match, lines) if m]
    return found[-limit:]


def _failed(verb: str, sandbox_id: str, exc: RuntimeCommandFailed, log: Path) -> CheckpointFailed:
    errors = criu_errors(log)
    detail = " / ".join(errors) if errors else exc.message
    return CheckpointFailed(f"cannot {verb} sandbox {sandbox_id}: CRIU failed: {detail}",
                            hint=f"CRIU's log: {log}; `criu check` says what the kernel "
                            "lacks")  # fmt: skip
