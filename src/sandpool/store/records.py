"""The rows of the store as plain frozen dataclasses (what the service and tests see)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiKeyRecord", "SandboxRecord", "TenantRecord"]


@dataclass(frozen=True)
class TenantRecord:
    """One tenant; a quota field of None means the configuration's default."""

    id: str
    name: str
    created_at: float
    max_concurrent: int | None = None
    max_cpu: float | None = None
    max_memory: int | None = None
    creates_per_second: float | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    """One API key as stored: its public id and the hash of its secret, never the secret."""

    id: str
    tenant_id: str | None
    role: str
    secret_sha256: str
    name: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class SandboxRecord:
    """One long-lived sandbox's durable record (the sandboxes issue fills in the behaviour)."""

    id: str
    tenant_id: str
    pool: str
    state: str
    created_at: float
    image: str = ""
    reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    cpu: float = 0.0
    memory: int = 0
    ready_at: float | None = None
    ended_at: float | None = None
    expires_at: float | None = None
