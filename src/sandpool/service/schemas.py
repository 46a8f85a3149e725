"""The API's request and response bodies: strict camelCase models (unknown keys and wrong
types are 400s naming the field), and what the OpenAPI document is generated from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from sandpool.config.models import Cpu, DiskSize, PoolName, Seconds, Size
from sandpool.config.quantities import PIDS_RANGE

__all__ = [
    "CreatedKeyOut",
    "ErrorOut",
    "KeyIn",
    "KeyOut",
    "MeOut",
    "PoolOut",
    "QuotaIn",
    "QuotaOut",
    "RunIn",
    "RunOut",
    "TenantIn",
    "TenantOut",
    "iso",
]

MAX_ARGS = 4096
MAX_TEXT = 65536


def iso(ts: float | None) -> str | None:
    """Unix seconds as an RFC 3339 UTC time (``None`` stays ``None``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")  # fmt: skip


def _env_name(name: str) -> str:
    if not name or "=" in name or "\0" in name:
        raise ValueError("an environment variable name is not empty and has no '=' or NUL")
    return name


class ApiModel(BaseModel):
    """Strict camelCase body: unknown keys are errors, no type coercion."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              strict=True)  # fmt: skip


Text = Annotated[StrictStr, Field(max_length=MAX_TEXT)]
EnvName = Annotated[StrictStr, Field(max_length=4096), AfterValidator(_env_name)]
TenantName = Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]


class ErrorOut(ApiModel):
    """Every error answer: a stable ``code``, a sentence, and what to do about it."""

    code: str
    message: str
    hint: str | None = None


class RunLimits(ApiModel):
    """Limits of one run; absent: the pool's ``containerDefaults``."""

    cpu: Cpu | None = None
    memory: Size | None = None
    pids: StrictInt | None = Field(default=None, ge=PIDS_RANGE[0], le=PIDS_RANGE[1])
    disk: DiskSize | None = None
    max_output: Size | None = None


class RunIn(ApiModel):
    """A one-shot run: the contract of ``sandpool run``."""

    pool: PoolName = "default"
    image: Annotated[StrictStr, Field(max_length=1024)] | None = None
    command: list[Text] = Field(default_factory=list, max_length=MAX_ARGS)
    env: dict[EnvName, Text] = Field(default_factory=dict, max_length=MAX_ARGS)
    workdir: Annotated[StrictStr, Field(max_length=4096)] | None = None
    limits: RunLimits = Field(default_factory=RunLimits)
    timeout: Seconds | None = None
    stdin: Annotated[StrictStr, Field(max_length=1 << 20)] | None = None
    output_encoding: Literal["utf-8", "base64"] = "utf-8"
    # the network policy (``sandpool run --network/--allow``); None: the pool's
    network: Literal["none", "allow", "open"] | None = None
    allow: list[Annotated[StrictStr, Field(max_length=512)]] | None = Field(
        default=None, max_length=256
    )


class RunOut(ApiModel):
    """How the run ended (the object of ``sandpool run --json``) with its captured output."""

    id: str
    pool: str
    container_runtime: str
    gvisor_platform: str | None
    image: str
    exit_code: int
    oom_killed: bool
    timed_out: bool
    started_at: str
    finished_at: str
    duration_ms: float
    start_latency_ms: float | None
    error: str | None
    stdout: str
    stderr: str
    output_encoding: Literal["utf-8", "base64"]
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_dropped_bytes: int
    stderr_dropped_bytes: int
    network: str
    network_bytes_in: int | None
    network_bytes_out: int | None


class PoolLimits(ApiModel):
    """A pool's default limits (``containerDefaults``)."""

    cpu: float | None
    memory: str
    pids: int
    timeout: float | None
    disk: str
    max_output: str


class PoolOut(ApiModel):
    """One pool of the server's configuration."""

    name: str
    container_runtime: str
    gvisor_platform: str | None
    runtime: str | None
    limits: PoolLimits


class QuotaIn(ApiModel):
    """A tenant's own quota; an absent field takes ``gateway.tenantQuota``'s value."""

    concurrent: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    cpu: float | None = Field(default=None, ge=0, le=1_000_000)
    memory: Size | None = None
    creates_per_second: float | None = Field(default=None, gt=0, le=1_000_000)


class QuotaOut(ApiModel):
    """A tenant's effective quota (memory in bytes)."""

    concurrent: int
    cpu: float
    memory: int
    creates_per_second: float


class TenantIn(ApiModel):
    """A new tenant."""

    name: TenantName
    quota: QuotaIn = Field(default_factory=QuotaIn)


class TenantOut(ApiModel):
    """One tenant."""

    id: str
    name: str
    created_at: str
    quota: QuotaOut


class KeyIn(ApiModel):
    """A new API key of a tenant."""

    tenant: TenantName
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    expires_in: Seconds | None = None


class KeyOut(ApiModel):
    """One API key, without its secret."""

    id: str
    tenant: str | None
    role: str
    name: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class CreatedKeyOut(KeyOut):
    """A key just made: ``key`` is shown this once and never again."""

    key: str


class UsageOut(ApiModel):
    """What a tenant holds now (runs and sandboxes of this server)."""

    concurrent: int
    cpu: float
    memory: int


class MeOut(ApiModel):
    """Who the caller is, its quota and its usage."""

    key_id: str
    admin: bool
    tenant: str | None
    quota: QuotaOut | None
    usage: UsageOut | None
