"""What a caller asks of a sandbox and what it gets back: plain data, JSON-ready, by id.

Everything here is what a remote caller (the HTTP service) would send or receive: ids,
numbers, strings and bytes, never live objects.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "EndReason",
    "ExecRequest",
    "ExecResult",
    "ExecSummary",
    "OutputEvent",
    "SandboxInfo",
    "SandboxRequest",
    "SandboxState",
]


class SandboxState(StrEnum):
    """Where a sandbox is in its life."""

    WARM = "warm"  # started ahead in a warm pool, not claimed yet (``sandbox.warm``)
    CREATING = "creating"
    RUNNING = "running"
    PAUSED = "paused"
    CHECKPOINTED = "checkpointed"  # its processes dumped to disk by CRIU, none running
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class EndReason(StrEnum):
    """Why a sandbox was terminated."""

    TTL = "ttl"
    IDLE = "idle"
    OOM = "oom"
    KILLED = "killed"  # terminate() asked for it
    ERROR = "error"  # it failed to start, died on its own, or could not be adopted


@dataclass(frozen=True)
class SandboxRequest:
    """One sandbox to create; None means "the pool's default"."""

    pool: str
    image: str | None = None
    cpu: float | None = None
    memory: str | None = None
    pids: int | None = None
    disk: str | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    ttl: float | None = None
    idle_timeout: float | None = None
    labels: tuple[tuple[str, str], ...] = ()
    network: str | None = None  # none|allow|open (``sandpool.network``); None: the pool's
    allow: tuple[str, ...] | None = None  # allow entries; alone, they mean network "allow"


@dataclass(frozen=True)
class ExecRequest:
    """One process to run in a sandbox. ``stdin``: keep a pipe open for ``write_stdin``."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str | None = None
    timeout: float | None = None
    user: str | None = None
    stdin: bool = False


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SandboxInfo:
    """A sandbox as its owner knows it; ``to_json`` is what ``--json`` and the service show.

    ``deadline`` is the TTL's end (from ``ready_at``); ``idle_timeout`` counts from
    ``last_activity`` (the last exec or file operation, or the last resume)."""

    id: str
    pool: str
    container_runtime: str
    gvisor_platform: str | None
    image: str
    state: SandboxState = SandboxState.CREATING
    reason: EndReason | None = None
    error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ttl: float | None = None
    idle_timeout: float | None = None
    created_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    ended_at: float | None = None
    last_activity: float = field(default_factory=time.time)
    oom_kills: int = 0
    workdir: str = "/"
    env: tuple[str, ...] = ()
    exec_env: tuple[str, ...] = ()  # given to every exec (a claimed warm sandbox's env)
    network: str = "none"  # the policy in force: mode and allow entries
    allow: tuple[str, ...] = ()
    network_bytes_in: int | None = None  # host side of its veth (None: network none)
    network_bytes_out: int | None = None
    ports: tuple[tuple[int, str, int], ...] = ()  # exposed: (its port, host address, host port)

    @property
    def deadline(self) -> float | None:
        """When the TTL ends (None: no TTL, or not ready yet)."""
        if self.ttl is None or self.ready_at is None:
            return None
        return self.ready_at + self.ttl

    def to_json(self) -> dict[str, Any]:
        """The camelCase view."""
        return {
            "id": self.id, "pool": self.pool, "containerRuntime": self.container_runtime,
            "gvisorPlatform": self.gvisor_platform, "image": self.image,
            "state": self.state.value, "reason": self.reason.value if self.reason else None,
            "error": self.error, "labels": dict(self.labels), "ttl": self.ttl,
            "idleTimeout": self.idle_timeout, "createdAt": iso(self.created_at),
            "readyAt": iso(self.ready_at), "expiresAt": iso(self.deadline),
            "endedAt": iso(self.ended_at), "lastActivity": iso(self.last_activity),
            "oomKills": self.oom_kills, "network": self.network, "allow": list(self.allow),
            "networkBytesIn": self.network_bytes_in, "networkBytesOut": self.network_bytes_out,
            "ports": [{"port": p, "host": h, "hostPort": hp} for p, h, hp in self.ports],
        }  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        """What is saved on disk (``from_record`` reads it back)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["state"] = self.state.value
        data["reason"] = self.reason.value if self.reason else None
        data["env"] = list(self.env)
        data["exec_env"] = list(self.exec_env)
        data["allow"] = list(self.allow)
        data["ports"] = [list(p) for p in self.ports]
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> SandboxInfo:
        """Rebuild from ``to_record``'s output (ValueError/TypeError/KeyError if malformed)."""
        data = dict(data)
        data["state"] = SandboxState(data["state"])
        data["reason"] = EndReason(data["reason"]) if data.get("reason") else None
        data["env"] = tuple(data.get("env") or ())
        data["exec_env"] = tuple(data.get("exec_env") or ())
        data["allow"] = tuple(data.get("allow") or ())
        data["ports"] = tuple((int(p), str(h), int(hp)) for p, h, hp in data.get("ports") or ())
        data["labels"] = {str(k): str(v) for k, v in dict(data.get("labels") or {}).items()}
        return cls(**data)


@dataclass(frozen=True)
class OutputEvent:
    """A chunk of an exec's stdout or stderr at ``offset`` in that stream. ``dropped``: bytes
    of the stream before this chunk that were no longer kept when it was read (see
    ``sandbox.output``)."""

    stream: str  # "stdout" or "stderr"
    offset: int
    data: bytes
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        """As a JSON object; ``data`` is base64 (output is bytes, not always text)."""
        return {"type": self.stream, "offset": self.offset, "dropped": self.dropped,
                "data": base64.b64encode(self.data).decode()}  # fmt: skip


@dataclass
class ExecResult:
    """How one exec ended. ``stdout``/``stderr``: the output kept (all of it unless
    ``*_dropped``); ``sandbox_ended``: the sandbox ended under it (ttl, oom, …)."""

    exec_id: str
    sandbox_id: str
    exit_code: int = -1
    oom_killed: bool = False
    timed_out: bool = False
    killed: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    error: str | None = None
    sandbox_ended: str | None = None
    stdout: bytes = field(default=b"", repr=False)
    stderr: bytes = field(default=b"", repr=False)
    stdout_dropped: int = 0
    stderr_dropped: int = 0

    @property
    def duration_ms(self) -> float:
        """Wall time of the exec, in milliseconds."""
        return round((self.finished_at - self.started_at) * 1000, 3)

    def to_json(self) -> dict[str, Any]:
        """The camelCase view (without the output, which streams as ``OutputEvent``s)."""
        return {
            "execId": self.exec_id, "sandboxId": self.sandbox_id, "exitCode": self.exit_code,
            "oomKilled": self.oom_killed, "timedOut": self.timed_out, "killed": self.killed,
            "startedAt": iso(self.started_at), "finishedAt": iso(self.finished_at),
            "durationMs": self.duration_ms, "error": self.error,
            "sandboxEnded": self.sandbox_ended, "stdoutDroppedBytes": self.stdout_dropped,
            "stderrDroppedBytes": self.stderr_dropped,
        }  # fmt: skip


@dataclass(frozen=True)
class ExecSummary:
    """One exec of a sandbox as a listing shows it: ``result`` None while it runs."""

    exec_id: str
    argv: tuple[str, ...]
    started_at: float
    result: ExecResult | None
