"""The container runtime interface that runc and gVisor implement.

A runtime object is cheap, immutable after construction and safe to share between threads:
every method is one CLI invocation through ``runtime.runner``. ``global_args`` is the only
place the runtime's global flags (``--root``, ``--platform``, …) are written, so every
subcommand of one runtime object sees the same ones.
"""

from __future__ import annotations

import json
import signal as signals
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sandpool.errors import OperationNotSupported, RuntimeCommandFailed
from sandpool.runtime.runner import DEFAULT_TIMEOUT, CommandResult, FileArg, run_command, spawn

__all__ = ["Capability", "ContainerRuntime", "ContainerState", "RunFiles"]


class Capability(StrEnum):
    """What a runtime can do beyond running a container."""

    CHECKPOINT_RESTORE = "checkpoint-restore"
    GPU_PASSTHROUGH = "gpu-passthrough"
    GPU_NVPROXY = "gpu-nvproxy"
    OOM_EVENTS = "oom-events"
    EXEC = "exec"
    USERSPACE_KERNEL = "userspace-kernel"


@dataclass(frozen=True)
class ContainerState:
    """One line of ``state`` / ``list``."""

    id: str
    status: str
    pid: int
    bundle: str
    annotations: dict[str, str] = field(default_factory=dict)  # the spec's, as listed

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerState:
        """Build from the runtime's JSON (runc and runsc share the field names)."""
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "unknown")),
            pid=int(data.get("pid") or 0),
            bundle=str(data.get("bundle") or data.get("bundle_path") or ""),
            annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
        )


@dataclass(frozen=True)
class RunFiles:
    """Per-container files the runtime writes while running one container."""

    pid_file: Path
    log_file: Path

    @property
    def panic_log(self) -> Path:
        """Where gVisor's sandbox and gofer write a panic (``--panic-log``)."""
        return self.log_file.with_name("runtime-panic.log")


class ContainerRuntime(ABC):
    """One OCI runtime binary with its global flags bound."""

    name: str
    capabilities: frozenset[Capability]
    init: str | None = None  # a host init binary run as the container's PID 1 (runc: tini)

    def __init__(self, binary: str, root: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.binary = binary
        self.root = root
        self.timeout = timeout

    @property
    def platform(self) -> str | None:
        """The gVisor platform in use, or None for runtimes without one."""
        return None

    @abstractmethod
    def global_args(self) -> list[str]:
        """Global flags put before every subcommand."""

    @abstractmethod
    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Return the OCI spec adjusted for this runtime (the input is not modified)."""

    def run_args(self, spec: dict[str, Any]) -> list[str]:
        """Extra global flags for the ``run`` of one container (e.g. nvproxy for GPU specs)."""
        return []

    def run_launcher(self, spec: dict[str, Any]) -> list[str]:
        """A command that ``run`` is started under, for this spec (gVisor: see there)."""
        return []

    def log_args(self, files: RunFiles) -> list[str]:
        """Extra logging flags for ``run`` (gVisor: where its sandbox writes a panic)."""
        return []

    def argv(self, verb: str, *args: str, extra_global: list[str] | None = None) -> list[str]:
        """The full command line for one subcommand."""
        return [self.binary, *self.global_args(), *(extra_global or []), verb, *args]

    def call(self, verb: str, *args: str, timeout: float | None = None) -> CommandResult:
        """Run one subcommand to completion."""
        return run_command(self.argv(verb, *args), timeout=timeout or self.timeout)

    # ---- verbs -------------------------------------------------------------------------

    def run(
        self,
        container_id: str,
        bundle: Path,
        spec: dict[str, Any],
        files: RunFiles,
        *,
        stdin: FileArg = None,
        stdout: FileArg = None,
        stderr: FileArg = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``runtime run`` in the foreground, in its own process group."""
        log = [*self.log_args(files), "--log", str(files.log_file), "--log-format", "json",
               *self.run_args(spec)]  # fmt: skip
        argv = self.argv(
            "run",
            "--bundle",
            str(bundle),
            "--pid-file",
            str(files.pid_file),
            container_id,
            extra_global=log,
        )
        return spawn([*self.run_launcher(spec), *argv], stdin=stdin, stdout=stdout, stderr=stderr)

    def exec(
        self, container_id: str, args: list[str], *, timeout: float | None = None
    ) -> CommandResult:
        """Run ``args`` inside a running container; the result keeps its exit status."""
        argv = self.argv("exec", container_id, *args)
        return run_command(argv, timeout=timeout or self.timeout, check=False)

    def kill(
        self, container_id: str, sig: int = signals.SIGKILL, *, all_processes: bool = True
    ) -> None:
        """Send ``sig`` to the container's processes."""
        flags = ["--all"] if all_processes else []
        self.call("kill", *flags, container_id, str(int(sig)))

    def delete(self, container_id: str, *, force: bool = True) -> None:
        """Remove the container's runtime state (``--force`` kills it first)."""
        self.call("delete", *(["--force"] if force else []), container_id)

    def state(self, container_id: str) -> ContainerState:
        """The container's current state as the runtime sees it."""
        return ContainerState.from_json(json.loads(self.call("state", container_id).stdout))

    def list(self) -> list[ContainerState]:
        """Every container under this runtime's root."""
        out = self.call("list", "--format", "json").stdout.strip()
        data = json.loads(out) if out and out != "null" else []
        return [ContainerState.from_json(item) for item in data or []]

    def events(self, container_id: str) -> dict[str, Any]:
        """One ``events --stats`` sample: the container's resource usage now."""
        out = self.call("events", "--stats", container_id).stdout
        return dict(json.loads(out.strip().splitlines()[0])) if out.strip() else {}

    def checkpoint(self, container_id: str, image_dir: Path) -> None:
        """Checkpoint the container to ``image_dir`` (CRIU), where supported."""
        raise OperationNotSupported(f"checkpoint is not supported by {self.name}")

    def restore(self, container_id: str, bundle: Path, image_dir: Path,
                pid_file: Path | None = None) -> None:  # fmt: skip
        """Restore a checkpointed container, detached, where supported."""
        raise OperationNotSupported(f"restore is not supported by {self.name}")

    def has_state(self, container_id: str) -> bool:
        """Whether the runtime's state for this container is on disk under ``root`` (no exec;
        a cheap pre-check for ``delete``, as ``run`` removes it itself on a clean exit)."""
        return (self.root / container_id).exists()

    def forget(self, container_id: str) -> None:  # noqa: B027 - runc leaves nothing to forget
        """Remove state files the runtime left for a container it no longer knows."""

    def exists(self, container_id: str) -> bool:
        """Whether the runtime knows this container."""
        try:
            self.state(container_id)
        except RuntimeCommandFailed:
            return False
        return True
