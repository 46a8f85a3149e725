"""What the sandbox half of the SDK returns: plain frozen dataclasses read from the API's
JSON, and the one reader of the exec output stream that both twins share."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExecResult", "FileInfo", "OutputChunk", "SandboxInfo", "SandboxUsage", "StreamCursor"]


@dataclass(frozen=True)
class SandboxUsage:
    """What a running sandbox uses, as the server read it with the answer: cpu seconds,
    memory in use and its peak, disk used (bytes); None where the runtime keeps no figure."""

    cpu_seconds: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None
    disk_used_bytes: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SandboxUsage | None:
        """From a sandbox answer's ``usage`` (None once the sandbox ended)."""
        if not data:
            return None
        return cls(data.get("cpuSeconds"), data.get("memoryBytes"),
                   data.get("memoryPeakBytes"), data.get("diskUsedBytes"))  # fmt: skip


@dataclass(frozen=True)
class SandboxInfo:
    """One sandbox as the server reports it (``reason`` once terminated: ttl, idle, oom,
    killed, error; ``usage`` while it runs, read when the answer was made: ``refresh()``
    reads it again)."""

    id: str
    pool: str
    image: str
    state: str
    reason: str | None
    labels: dict[str, str]
    container_runtime: str | None
    gvisor_platform: str | None
    created_at: str
    expires_at: str | None
    ended_at: str | None
    oom_kills: int
    network: str | None = None  # the policy in force while it runs
    allow: tuple[str, ...] = ()
    network_bytes_in: int | None = None
    network_bytes_out: int | None = None
    usage: SandboxUsage | None = None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxInfo:
        """From the body of a sandbox endpoint."""
        return cls(
            id=data["id"], pool=data["pool"], image=data["image"], state=data["state"],
            reason=data["reason"], labels=dict(data["labels"]),
            container_runtime=data["containerRuntime"], gvisor_platform=data["gvisorPlatform"],
            created_at=data["createdAt"], expires_at=data["expiresAt"],
            ended_at=data["endedAt"], oom_kills=data["oomKills"],
            network=data.get("network"), allow=tuple(data.get("allow") or ()),
            network_bytes_in=data.get("networkBytesIn"),
            network_bytes_out=data.get("networkBytesOut"),
            usage=SandboxUsage.from_json(data.get("usage")), raw=dict(data),
        )  # fmt: skip


@dataclass(frozen=True)
class OutputChunk:
    """Bytes an exec wrote on ``stream`` (stdout or stderr) at ``offset`` of that stream."""

    stream: str
    offset: int
    data: bytes

    @property
    def text(self) -> str:
        """The bytes as UTF-8 (invalid sequences replaced)."""
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ExecResult:
    """How an exec ended: ``exit_code`` (137 killed or OOM-killed, 124 timed out), and the
    output read from its stream (all of it unless ``*_dropped`` says the server's output log
    dropped some)."""

    exec_id: str
    exit_code: int
    oom_killed: bool
    timed_out: bool
    killed: bool
    error: str | None
    sandbox_ended: str | None
    duration_ms: float | None
    stdout: bytes = field(repr=False, default=b"")
    stderr: bytes = field(repr=False, default=b"")
    stdout_dropped: int = 0
    stderr_dropped: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any], stdout: bytes = b"",
                  stderr: bytes = b"") -> ExecResult:  # fmt: skip
        """From an ``exit`` event (or a finished exec's body) and the output read."""
        return cls(
            exec_id=data.get("execId") or data.get("id") or "", exit_code=data["exitCode"],
            oom_killed=data["oomKilled"], timed_out=data["timedOut"], killed=data["killed"],
            error=data["error"], sandbox_ended=data["sandboxEnded"],
            duration_ms=data["durationMs"], stdout=stdout, stderr=stderr,
            stdout_dropped=data.get("stdoutDroppedBytes", 0),
            stderr_dropped=data.get("stderrDroppedBytes", 0),
        )  # fmt: skip


@dataclass(frozen=True)
class FileInfo:
    """One file of a sandbox (``type``: file, dir, symlink, other; ``mode`` in octal)."""

    name: str
    path: str
    type: str
    mode: str
    size: int
    mtime: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileInfo:
        """From a files endpoint."""
        return cls(data["name"], data["path"], data["type"], data["mode"], data["size"],
                   data["mtime"])  # fmt: skip


@dataclass
class StreamCursor:
    """Where a reader of one exec's output stream is: the offsets to resume from after a
    dropped connection, and the exit event once it came."""

    stdout: int = 0
    stderr: int = 0
    exit: dict[str, Any] | None = None

    def params(self) -> dict[str, str]:
        """The query that resumes the stream here."""
        return {"stdout_offset": str(self.stdout), "stderr_offset": str(self.stderr)}

    def feed(self, line: str) -> OutputChunk | None:
        """Read one NDJSON line; the output chunk it carries (None for keepalive and exit).
        Bytes before the cursor (sent again after a reconnect) are skipped."""
        if not line.strip():
            return None
        event = json.loads(line)
        kind = event.get("type")
        if kind == "exit":
            self.exit = event
            return None
        if kind not in ("stdout", "stderr"):
            return None
        data, offset = base64.b64decode(event["data"]), int(event["offset"])
        seen = getattr(self, kind)
        if offset + len(data) <= seen:
            return None
        data, offset = data[max(0, seen - offset) :], max(offset, seen)
        setattr(self, kind, offset + len(data))
        return OutputChunk(kind, offset, data)
