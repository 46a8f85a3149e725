"""What the SDK returns: plain frozen dataclasses read from the API's JSON (snake_case)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiKey", "CreatedKey", "Me", "Pool", "RunResult", "Tenant"]


@dataclass(frozen=True)
class RunResult:
    """How a one-shot run ended: ``exit_code`` as ``sandpool run`` exits (137 OOM, 124
    timeout), and its captured output, capped at the pool's ``maxOutput``."""

    id: str
    pool: str
    exit_code: int
    oom_killed: bool
    timed_out: bool
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)
    error: str | None
    container_runtime: str
    gvisor_platform: str | None
    image: str
    duration_ms: float
    start_latency_ms: float | None
    stdout_truncated: bool
    stderr_truncated: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """From the body of ``POST /v1/runs`` (asked with ``outputEncoding: base64``)."""
        return cls(
            id=data["id"], pool=data["pool"], exit_code=data["exitCode"],
            oom_killed=data["oomKilled"], timed_out=data["timedOut"],
            stdout=base64.b64decode(data["stdout"]), stderr=base64.b64decode(data["stderr"]),
            error=data["error"], container_runtime=data["containerRuntime"],
            gvisor_platform=data["gvisorPlatform"], image=data["image"],
            duration_ms=data["durationMs"], start_latency_ms=data["startLatencyMs"],
            stdout_truncated=data["stdoutTruncated"], stderr_truncated=data["stderrTruncated"],
        )  # fmt: skip


@dataclass(frozen=True)
class Pool:
    """One pool of the server: its runtimes and default limits (camelCase keys as served)."""

    name: str
    container_runtime: str
    gvisor_platform: str | None
    runtime: str | None
    limits: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pool:
        """From one item of ``GET /v1/pools``."""
        return cls(data["name"], data["containerRuntime"], data["gvisorPlatform"],
                   data["runtime"], dict(data["limits"]))  # fmt: skip


@dataclass(frozen=True)
class Tenant:
    """One tenant and its effective quota (``memory`` in bytes)."""

    id: str
    name: str
    created_at: str
    quota: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tenant:
        """From the body of a tenants endpoint."""
        return cls(data["id"], data["name"], data["createdAt"], dict(data["quota"]))


@dataclass(frozen=True)
class ApiKey:
    """One API key, without its secret."""

    id: str
    tenant: str | None
    role: str
    name: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiKey:
        """From the body of a keys endpoint."""
        return cls(data["id"], data["tenant"], data["role"], data["name"], data["createdAt"],
                   data["expiresAt"], data["revokedAt"])  # fmt: skip


@dataclass(frozen=True)
class CreatedKey(ApiKey):
    """A key just made; ``key`` is shown this once (the server keeps only its hash)."""

    key: str = field(default="", repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CreatedKey:
        """From the body of ``POST /v1/keys``."""
        base = ApiKey.from_json(data)
        return cls(**base.__dict__, key=data["key"])


@dataclass(frozen=True)
class Me:
    """Who a key belongs to; for a tenant, its quota and what it holds now."""

    key_id: str
    admin: bool
    tenant: str | None
    quota: dict[str, Any] | None
    usage: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Me:
        """From the body of ``GET /v1/me``."""
        return cls(data["keyId"], data["admin"], data["tenant"], data["quota"], data["usage"])
