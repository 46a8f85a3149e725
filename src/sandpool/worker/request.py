"""What a caller asks for (RunRequest) and what it gets back (RunResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sandpool.runtime.spec import BindMount

__all__ = [
    "EXIT_NOT_EXECUTABLE",
    "EXIT_NOT_FOUND",
    "EXIT_OOM",
    "EXIT_RUNTIME_FAILED",
    "EXIT_TIMEOUT",
    "ImageLike",
    "RunRequest",
    "RunResult",
]

EXIT_TIMEOUT = 124
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_OOM = 137
# The container started but its runtime failed under it (a gVisor Sentry panic): the same
# status as "could not start", since the command's own status is lost.
EXIT_RUNTIME_FAILED = 125


class ImageLike(Protocol):
    """The parts of an image a container needs (``sandpool.images.Image`` has them)."""

    @property
    def reference(self) -> str: ...
    @property
    def rootfs(self) -> Any: ...
    @property
    def env(self) -> tuple[str, ...]: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def entrypoint(self) -> tuple[str, ...]: ...
    @property
    def cmd(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class RunRequest:
    """One container to run; None means "the pool's default"."""

    command: tuple[str, ...] = ()
    image: str | None = None
    cpu: float | None = None
    memory: str | None = None
    pids: int | None = None
    timeout: float | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    gpus: int = 0
    mounts: tuple[BindMount, ...] = ()
    disk: str | None = None
    max_output: str | None = None
    network: str | None = None  # none|allow|open (sandpool.network); None: the pool's
    allow: tuple[str, ...] | None = None  # allow entries; alone, they mean network "allow"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RunResult:
    """How one container ended. ``stdout``/``stderr`` are set when they were captured."""

    id: str
    pool: str
    container_runtime: str
    gvisor_platform: str | None
    image: str
    exit_code: int = -1
    oom_killed: bool = False
    timed_out: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    start_latency_ms: float | None = None
    error: str | None = None
    stdout: bytes | None = field(default=None, repr=False)
    stderr: bytes | None = field(default=None, repr=False)
    stdout_dropped: int = 0  # captured bytes past the output limit, not in ``stdout``
    stderr_dropped: int = 0
    network: str = "none"  # the policy's mode at the start
    network_bytes_in: int | None = None  # counted on the host side of its veth (not for none)
    network_bytes_out: int | None = None

    @property
    def output_truncated(self) -> bool:
        """Whether captured output went past the limit (``stdout``/``stderr`` hold its head)."""
        return bool(self.stdout_dropped or self.stderr_dropped)

    @property
    def duration_ms(self) -> float:
        """Wall time from request to end, in milliseconds."""
        return round((self.finished_at - self.started_at) * 1000, 3)

    def to_json(self) -> dict[str, Any]:
        """The object ``sandpool run --json`` prints (SPEC §4)."""
        return {
            "id": self.id,
            "pool": self.pool,
            "containerRuntime": self.container_runtime,
            "gvisorPlatform": self.gvisor_platform,
            "image": self.image,
            "exitCode": self.exit_code,
            "oomKilled": self.oom_killed,
            "timedOut": self.timed_out,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "durationMs": self.duration_ms,
            "startLatencyMs": self.start_latency_ms,
            "error": self.error,
            "stdoutTruncated": self.stdout_dropped > 0,
            "stderrTruncated": self.stderr_dropped > 0,
            "stdoutDroppedBytes": self.stdout_dropped,
            "stderrDroppedBytes": self.stderr_dropped,
            "network": self.network,
            "networkBytesIn": self.network_bytes_in,
            "networkBytesOut": self.network_bytes_out,
        }
