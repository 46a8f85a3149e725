"""The configuration schema: Beta9's worker pools, camelCase keys exactly as in the seed."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)
from pydantic.alias_generators import to_camel

from sandpool.sizes import MIN_DISK, parse_size

__all__ = [
    "ContainerDefaults",
    "ContainerRuntimeConfig",
    "ContainerRuntimeName",
    "GvisorPlatform",
    "JobSpec",
    "PoolConfig",
    "PoolSizing",
    "SandpoolConfig",
    "WorkerConfig",
    "model_in",
]

DEFAULT_GVISOR_ROOT = "/run/gvisor"
DEFAULT_STATE_DIR = "/var/lib/sandpool"


class ContainerRuntimeName(StrEnum):
    """The OCI runtime that spawns user containers inside a worker."""

    RUNC = "runc"
    GVISOR = "gvisor"


class GvisorPlatform(StrEnum):
    """How gVisor's Sentry intercepts system calls."""

    SYSTRAP = "systrap"
    KVM = "kvm"
    PTRACE = "ptrace"


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation such as ``X`` or ``X | None``."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


class _Model(BaseModel):
    """Strict camelCase model: unknown keys are errors, snake_case names work in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


class ContainerRuntimeConfig(_Model):
    """gVisor settings of a pool; validated always, used only when the runtime is gvisor."""

    gvisor_platform: GvisorPlatform | None = None
    gvisor_root: StrictStr = DEFAULT_GVISOR_ROOT
    gvisor_extra_args: list[StrictStr] = Field(default_factory=list)


class ContainerDefaults(_Model):
    """Limits every container of the pool gets unless the run asks for others."""

    memory: StrictStr = "512Mi"
    pids: StrictInt = Field(default=512, ge=1)
    cpu: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    network: Literal["none"] = "none"
    disk: StrictStr = "1Gi"
    max_output: StrictStr = "16Mi"
    gpu_sharing: StrictBool = False
    ttl: float | None = Field(default=None, gt=0)  # a sandbox's lifetime from ready, seconds
    idle_timeout: float | None = Field(default=None, gt=0)  # a sandbox's idle limit, seconds

    @field_validator("disk")
    @classmethod
    def _disk_size(cls, value: str) -> str:
        parse_size(value, MIN_DISK)
        return value

    @field_validator("max_output")
    @classmethod
    def _output_size(cls, value: str) -> str:
        parse_size(value)
        return value


class JobSpec(_Model):
    """Pass-through pieces of the worker Job's pod spec (Kubernetes objects, unvalidated here)."""

    node_selector: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    env: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)


class PoolSizing(_Model):
    """Resources of one worker pod of the pool."""

    default_worker_cpu: StrictStr = Field(default="1000m", alias="defaultWorkerCPU")
    default_worker_memory: StrictStr = "1Gi"
    default_worker_gpu_count: StrictInt = Field(default=1, ge=0)


class PoolConfig(_Model):
    """One worker pool: its pod runtime, its container runtime and the knobs around them."""

    mode: Literal["local", "external"] = "local"
    gpu_type: StrictStr = Field(default="", alias="gpuType")
    runtime: StrictStr | None = None
    container_runtime: ContainerRuntimeName | None = None
    container_runtime_config: ContainerRuntimeConfig = Field(default_factory=ContainerRuntimeConfig)
    container_start_concurrency: StrictInt | None = Field(default=None, ge=1, le=256)
    container_defaults: ContainerDefaults = Field(default_factory=ContainerDefaults)
    job_spec: JobSpec = Field(default_factory=JobSpec)
    pool_sizing: PoolSizing = Field(default_factory=PoolSizing)
    tmp_size_limit: StrictStr = "30Gi"
    priority: StrictInt = 0
    requires_pool_selector: StrictBool = False


class WorkerConfig(_Model):
    """The worker section: binaries, state, the worker image and the pools."""

    container_runtime: ContainerRuntimeName | None = None
    runc_path: StrictStr = "runc"
    runsc_path: StrictStr = "runsc"
    state_dir: StrictStr = DEFAULT_STATE_DIR
    cgroup_parent: StrictStr = Field(default="sandpool", pattern=r"^[A-Za-z0-9_.-]+$")
    default_image: StrictStr = ""
    image_registry: StrictStr = "docker.io"
    image_name: StrictStr = "sandpool/worker"
    image_tag: StrictStr = "latest"
    pools: dict[StrictStr, PoolConfig] = Field(default_factory=dict)


class SandpoolConfig(_Model):
    """The whole configuration document."""

    worker: WorkerConfig = Field(default_factory=WorkerConfig)
