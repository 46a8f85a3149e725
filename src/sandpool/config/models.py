"""The configuration schema: Beta9's worker pools, camelCase keys exactly as in the seed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sandpool.config.gvisor_flags import check_extra_args
from sandpool.config.kubernetes import KubernetesConfig
from sandpool.config.quantities import (
    CPU_RANGE,
    PIDS_RANGE,
    TIMEOUT_RANGE,
    check_absolute_path,
    check_binary,
    check_kube_quantity,
    check_number,
    parse_size,
)
from sandpool.network.policy import parse_allow
from sandpool.network.settings import DEFAULT_RANGE
from sandpool.sizes import MIN_DISK

__all__ = [
    "ContainerDefaults",
    "ContainerRuntimeConfig",
    "ContainerRuntimeName",
    "GatewayConfig",
    "GatewayHttp",
    "GvisorPlatform",
    "JobSpec",
    "PoolConfig",
    "PoolSizing",
    "SandpoolConfig",
    "TenantQuota",
    "WarmPoolConfig",
    "WorkerConfig",
    "WorkerNetwork",
    "model_in",
]


def _bounded(bounds: tuple[float, float], unit: str) -> Callable[[float], float]:
    return lambda value: check_number(value, bounds, unit)


def _size(text: str) -> str:
    parse_size(text)
    return text


def _disk_size(text: str) -> str:
    parse_size(text, MIN_DISK)
    return text


def _allow_entry(text: str) -> str:
    parse_allow(text)
    return text


def _ipv4_network(longest: int) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            net = ipaddress.ip_network(text)
        except ValueError:
            raise ValueError("expected an IPv4 network in CIDR form (10.213.0.0/16)") from None
        if net.version != 4:
            raise ValueError("expected an IPv4 network (sandboxes have no IPv6)")
        if net.prefixlen > longest:
            raise ValueError(f"expected an IPv4 network of /{longest} or larger (10.213.0.0/16)")
        return text

    return check


def _resolver(text: str) -> str:
    if not text:
        return text  # the host's first nameserver
    host, _, port = text.partition(":") if text.count(":") == 1 else (text, "", "")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("expected an IP address, optionally with :PORT (10.0.0.2:53)") from None
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError("the port must be a whole number from 1 to 65535")
    return text


def _pool_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name) is None:
        raise ValueError("a pool name is 1 to 63 letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit")  # fmt: skip
    return name


def _redis_url(text: str) -> str:
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL "
                         "(redis://127.0.0.1:6379/0), or empty for no Redis")  # fmt: skip
    return text


def _cgroup_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", name) is None or name in (".", ".."):
        raise ValueError("expected one cgroup name: letters, digits, '_', '.' or '-' "
                         "(not '.' or '..')")  # fmt: skip
    return name


AbsolutePath = Annotated[StrictStr, AfterValidator(check_absolute_path)]
Binary = Annotated[StrictStr, AfterValidator(check_binary)]
KubeQuantity = Annotated[StrictStr, AfterValidator(check_kube_quantity)]
Size = Annotated[StrictStr, AfterValidator(_size)]
DiskSize = Annotated[StrictStr, AfterValidator(_disk_size)]
Cpu = Annotated[StrictFloat, AfterValidator(_bounded(CPU_RANGE, "cores"))]
Seconds = Annotated[StrictFloat, AfterValidator(_bounded(TIMEOUT_RANGE, "seconds"))]
CgroupName = Annotated[StrictStr, AfterValidator(_cgroup_name)]
PoolName = Annotated[StrictStr, AfterValidator(_pool_name)]
RedisUrl = Annotated[StrictStr, AfterValidator(_redis_url)]
AllowEntry = Annotated[StrictStr, AfterValidator(_allow_entry)]
Ipv4Range = Annotated[StrictStr, AfterValidator(_ipv4_network(30))]
Ipv4Net = Annotated[StrictStr, AfterValidator(_ipv4_network(32))]
Resolver = Annotated[StrictStr, AfterValidator(_resolver)]
RunscArgs = Annotated[list[StrictStr], AfterValidator(check_extra_args)]

DEFAULT_GVISOR_ROOT = "/run/gvisor"
MAX_WARM_SIZE = 256  # warm sandboxes per pool
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
    gvisor_root: AbsolutePath = DEFAULT_GVISOR_ROOT
    gvisor_extra_args: RunscArgs = Field(default_factory=list)


class ContainerDefaults(_Model):
    """Limits every container of the pool gets unless the run asks for others."""

    memory: Size = "512Mi"
    pids: StrictInt = Field(default=512, ge=PIDS_RANGE[0], le=PIDS_RANGE[1])
    cpu: Cpu | None = None
    timeout: Seconds | None = None
    network: Literal["none", "allow", "open"] = "none"
    allow: list[AllowEntry] = Field(default_factory=list)
    disk: DiskSize = "1Gi"
    max_output: Size = "16Mi"
    gpu_sharing: StrictBool = False
    ttl: float | None = Field(default=None, gt=0)  # a sandbox's lifetime from ready, seconds
    idle_timeout: float | None = Field(default=None, gt=0)  # a sandbox's idle limit, seconds

    @model_validator(mode="after")
    def _allow_needs_allow(self) -> ContainerDefaults:
        if self.allow and self.network != "allow":
            raise ValueError(f"allow entries need network: allow (network is {self.network!r})")
        return self


class WorkerNetwork(_Model):
    """Host-wide network settings of containers with network allow or open."""

    address_range: Ipv4Range = DEFAULT_RANGE  # one /30 per container
    refuse: list[Ipv4Net] = Field(default_factory=list)  # e.g. the cluster's pod/service CIDRs
    dns_upstream: Resolver = ""  # empty: the host's first nameserver
    ip_forward: StrictBool = True  # may sandpool set net.ipv4.ip_forward=1 (Docker does)


class WarmPoolConfig(_Model):
    """Sandboxes a pool keeps started ahead (``sandbox.warm``); unset values: the pool's own."""

    size: StrictInt = Field(default=0, ge=0, le=MAX_WARM_SIZE)
    image: StrictStr | None = None
    memory: Size | None = None
    pids: StrictInt | None = Field(default=None, ge=PIDS_RANGE[0], le=PIDS_RANGE[1])
    cpu: Cpu | None = None
    disk: DiskSize | None = None


class JobSpec(_Model):
    """Pass-through pieces of the worker Job's pod spec (Kubernetes objects, unvalidated here)."""

    node_selector: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    env: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)


class PoolSizing(_Model):
    """Resources of one worker pod of the pool."""

    default_worker_cpu: KubeQuantity = Field(default="1000m", alias="defaultWorkerCPU")
    default_worker_memory: KubeQuantity = "1Gi"
    default_worker_gpu_count: StrictInt = Field(default=1, ge=0, le=1024)


class PoolConfig(_Model):
    """One worker pool: its pod runtime, its container runtime and the knobs around them."""

    mode: Literal["local", "external"] = "local"
    gpu_type: StrictStr = Field(default="", alias="gpuType")
    runtime: StrictStr | None = None
    container_runtime: ContainerRuntimeName | None = None
    container_runtime_config: ContainerRuntimeConfig = Field(default_factory=ContainerRuntimeConfig)
    container_start_concurrency: StrictInt | None = Field(default=None, ge=1, le=256)
    container_defaults: ContainerDefaults = Field(default_factory=ContainerDefaults)
    warm_pool: WarmPoolConfig = Field(default_factory=WarmPoolConfig)
    job_spec: JobSpec = Field(default_factory=JobSpec)
    pool_sizing: PoolSizing = Field(default_factory=PoolSizing)
    tmp_size_limit: KubeQuantity = "30Gi"
    priority: StrictInt = Field(default=0, ge=-(2**31), le=2**31 - 1)
    requires_pool_selector: StrictBool = False


class WorkerConfig(_Model):
    """The worker section: binaries, state, the worker image and the pools."""

    container_runtime: ContainerRuntimeName | None = None
    runc_path: Binary = "runc"
    runsc_path: Binary = "runsc"
    state_dir: AbsolutePath = DEFAULT_STATE_DIR
    cgroup_parent: CgroupName = "sandpool"
    # first host uid of runc containers' user namespaces (65536 per container); 0: none
    user_namespace_base: StrictInt = Field(default=100000, ge=0, le=2**32 - 1 - 65536)
    default_image: StrictStr = ""
    network: WorkerNetwork = Field(default_factory=WorkerNetwork)
    # The worker image `sandpool images build-worker` builds: a name the user owns (podman's
    # local prefix), never a third party's image run with privileged: true.
    image_registry: StrictStr = "localhost"
    image_name: StrictStr = "sandpool-worker"
    image_tag: StrictStr = "0.1.0"
    pools: dict[PoolName, PoolConfig] = Field(default_factory=dict)


class GatewayHttp(_Model):
    """Where ``sandpool server`` listens (Beta9's ``gateway.http``); ``--listen`` overrides."""

    host: StrictStr = "127.0.0.1"
    port: StrictInt = Field(default=1994, ge=0, le=65535)


class TenantQuota(_Model):
    """What one tenant may hold at once unless its own quota says otherwise."""

    concurrent: StrictInt = Field(default=16, ge=0, le=1_000_000)  # runs and sandboxes
    cpu: StrictFloat = Field(default=16.0, ge=0, le=1_000_000)  # cores, summed
    memory: Size = "32Gi"  # summed memory limits
    creates_per_second: StrictFloat = Field(default=10.0, gt=0, le=1_000_000)


class GatewayConfig(_Model):
    """The HTTP service (``sandpool server``), after Beta9's ``gateway`` section."""

    http: GatewayHttp = Field(default_factory=GatewayHttp)
    # A SQLAlchemy URL; empty: the SQLite file <stateDir>/service/service.db.
    database: StrictStr = ""
    # The dispatch's Redis (a gateway: workers run the sandboxes); empty: the embedded server.
    # ``--redis`` / SANDPOOL_REDIS override it.
    redis: RedisUrl = ""
    shutdown_timeout: Seconds = 30.0
    # what a stopping server does with its sandboxes: end them, or leave them running for
    # the next start to adopt
    on_shutdown: Literal["terminate", "keep"] = "terminate"
    max_request_body: Size = "1Mi"
    max_request_headers: Size = "16Ki"
    max_upload_size: Size = "16Gi"  # one file uploaded to a sandbox (streamed, not in memory)
    tenant_quota: TenantQuota = Field(default_factory=TenantQuota)


class SandpoolConfig(_Model):
    """The whole configuration document."""

    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
