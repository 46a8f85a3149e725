"""The bodies of the sandbox, exec and file endpoints (strict camelCase, like ``schemas``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from sandpool.config.models import Cpu, DiskSize, PoolName, Seconds, Size
from sandpool.config.quantities import PIDS_RANGE
from sandpool.service.schemas import MAX_ARGS, ApiModel, EnvName, Text

__all__ = [
    "ExecIn",
    "ExecOut",
    "FileOut",
    "MkdirIn",
    "NetworkIn",
    "RenameIn",
    "SandboxIn",
    "SandboxLimits",
    "SandboxOut",
    "SandboxUsageOut",
    "TtlIn",
    "WrittenOut",
]

MAX_LABELS = 64
SandboxPath = Annotated[StrictStr, Field(min_length=1, max_length=4096)]
LabelKey = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")]
LabelValue = Annotated[StrictStr, Field(max_length=256)]
NetworkMode = Literal["none", "allow", "open"]
AllowList = Annotated[list[Annotated[StrictStr, Field(max_length=512)]], Field(max_length=256)]


class SandboxLimits(ApiModel):
    """Limits of one sandbox; absent: the pool's ``containerDefaults``."""

    cpu: Cpu | None = None
    memory: Size | None = None
    pids: StrictInt | None = Field(default=None, ge=PIDS_RANGE[0], le=PIDS_RANGE[1])
    disk: DiskSize | None = None


class SandboxIn(ApiModel):
    """A sandbox to create. ``ttl``: seconds from ready until it is ended; ``idleTimeout``:
    seconds without an exec or file operation until it is ended (absent: the pool's)."""

    pool: PoolName = "default"
    image: Annotated[StrictStr, Field(max_length=1024)] | None = None
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    env: dict[EnvName, Text] = Field(default_factory=dict, max_length=MAX_ARGS)
    workdir: Annotated[StrictStr, Field(max_length=4096)] | None = None
    ttl: Seconds | None = None
    idle_timeout: Seconds | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    # the network policy (``sandpool sandbox create --network/--allow``); None: the pool's
    network: NetworkMode | None = None
    allow: AllowList | None = None


class SandboxUsageOut(ApiModel):
    """What a running sandbox uses, read when asked: cpu seconds, memory in use and its peak
    (its cgroup), disk used (its own disk: writable layer and files); null where the runtime
    keeps no such figure."""

    cpu_seconds: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None
    disk_used_bytes: int | None


class SandboxOut(ApiModel):
    """One sandbox of the caller's tenant. ``reason`` (once terminated): ttl, idle, oom,
    killed or error; ``cpu``/``memory``: what it counts against the quota."""

    id: str
    pool: str
    image: str
    state: str
    reason: str | None
    labels: dict[str, str]
    container_runtime: str | None
    gvisor_platform: str | None
    cpu: float
    memory: int
    ttl: float | None
    idle_timeout: float | None
    created_at: str
    ready_at: str | None
    expires_at: str | None
    ended_at: str | None
    last_activity: str | None
    oom_kills: int
    network: str | None = None  # the policy in force while it runs (None once ended)
    allow: list[str] = Field(default_factory=list)
    network_bytes_in: int | None = None  # host side of its veth (None: no network)
    network_bytes_out: int | None = None
    usage: SandboxUsageOut | None = None  # while it runs (None once ended)


class TtlIn(ApiModel):
    """End the sandbox ``ttl`` seconds from now."""

    ttl: Seconds


class NetworkIn(ApiModel):
    """A running sandbox's new network policy (as at create; neither: the pool's default).
    Only a sandbox created with a network can change, and not to ``none``."""

    network: NetworkMode | None = None
    allow: AllowList | None = None


class ExecIn(ApiModel):
    """A process to start in a running sandbox; ``stdin``: keep its stdin open for
    ``POST …/stdin`` (else it reads end of file)."""

    command: list[Text] = Field(min_length=1, max_length=MAX_ARGS)
    env: dict[EnvName, Text] = Field(default_factory=dict, max_length=MAX_ARGS)
    cwd: Annotated[StrictStr, Field(max_length=4096)] | None = None
    timeout: Seconds | None = None
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    stdin: StrictBool = False


class ExecOut(ApiModel):
    """One exec: ``done`` false while it runs; once done, how it ended (``exitCode`` 137
    when killed or OOM-killed, 124 on timeout). ``stdoutBytes``/``stderrBytes``: the
    offsets the output has reached."""

    id: str
    sandbox_id: str
    done: bool
    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    killed: bool
    error: str | None
    sandbox_ended: str | None
    duration_ms: float | None
    stdout_bytes: int
    stderr_bytes: int
    stdout_dropped_bytes: int
    stderr_dropped_bytes: int


class FileOut(ApiModel):
    """One file of a sandbox (symlinks are not followed); ``mode`` in octal."""

    name: str
    path: str
    type: str
    mode: str
    size: int
    mtime: float


class WrittenOut(ApiModel):
    """An upload that completed."""

    path: str
    size: int


class MkdirIn(ApiModel):
    """A directory to make (``parents``: and its missing parents, no error if it exists)."""

    path: SandboxPath
    parents: StrictBool = False


class RenameIn(ApiModel):
    """Move ``source`` to ``destination``."""

    source: SandboxPath
    destination: SandboxPath
