"""One pool -> one ``batch/v1`` Job running ``sandpool worker --pool <name>``; pure functions."""

from __future__ import annotations

import re

from lightkube.models.batch_v1 import JobSpec as K8sJobSpec
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    EnvVar,
    HTTPGetAction,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SecurityContext,
    VolumeMount,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job

from sandpool.config.loader import LoadedConfig
from sandpool.config.models import PoolConfig, WorkerConfig
from sandpool.config.resolved import ResolvedPool
from sandpool.controller import volumes
from sandpool.controller.names import job_name, pool_labels
from sandpool.controller.worker_env import (
    HEALTH_PATH,
    HEALTH_PORT,
    POOL_ENV,
    READY_PATH,
    RESOLVED_CONFIG_ENV,
    encode_resolved_config,
)
from sandpool.errors import ConfigError, ConfigValidationError

__all__ = ["GPU_RESOURCE", "render_worker_job", "worker_image"]

GPU_RESOURCE = "nvidia.com/gpu"
# Kubernetes resource.Quantity syntax: a number and an optional binary/decimal suffix or exponent.
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def worker_image(worker: WorkerConfig) -> str:
    """``registry/name:tag`` of the worker image (an empty registry means the runtime default)."""
    registry = worker.image_registry.rstrip("/")
    base = f"{registry}/{worker.image_name}" if registry else worker.image_name
    return f"{base}:{worker.image_tag}"


def _quantity_problems(pool: PoolConfig, where: str) -> list[str]:
    """Problems for size and CPU values that Kubernetes would reject."""
    values = {
        "tmpSizeLimit": pool.tmp_size_limit,
        "poolSizing.defaultWorkerCPU": pool.pool_sizing.default_worker_cpu,
        "poolSizing.defaultWorkerMemory": pool.pool_sizing.default_worker_memory,
    }
    return [
        f"{where}.{key}: {value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi, 30Gi)"
        for key, value in values.items()
        if not _QUANTITY.match(value)
    ]


def _resources(pool: PoolConfig) -> ResourceRequirements:
    """Requests equal to limits (Guaranteed QoS: a worker's eviction kills all its containers)."""
    sizing = pool.pool_sizing
    wanted = {"cpu": sizing.default_worker_cpu, "memory": sizing.default_worker_memory}
    limits = dict(wanted)
    if pool.gpu_type and sizing.default_worker_gpu_count > 0:
        limits[GPU_RESOURCE] = str(sizing.default_worker_gpu_count)
    return ResourceRequirements(requests=wanted, limits=limits)


def _probe(path: str, failures: int) -> Probe:
    action = HTTPGetAction(path=path, port="health")
    return Probe(httpGet=action, periodSeconds=10, timeoutSeconds=3, failureThreshold=failures)


def _container(
    loaded: LoadedConfig, name: str, pool: PoolConfig, env: list[EnvVar], mounts: list[VolumeMount]
) -> Container:
    """The worker container: the image, the worker command, probes, privileges, resources."""
    return Container(
        name="worker",
        image=worker_image(loaded.model.worker),
        command=["sandpool", "worker", "--pool", name],
        env=env,
        ports=[ContainerPort(name="health", containerPort=HEALTH_PORT, protocol="TCP")],
        livenessProbe=_probe(HEALTH_PATH, failures=3),
        readinessProbe=_probe(READY_PATH, failures=1),
        resources=_resources(pool),
        # Workers create namespaces, mounts and cgroups for user containers (SPEC §2).
        securityContext=SecurityContext(privileged=True),
        volumeMounts=mounts,
    )


def _pod_spec(loaded: LoadedConfig, name: str, pool: PoolConfig, resolved: ResolvedPool) -> PodSpec:
    """The pod of a worker; raises ConfigValidationError for unusable ``jobSpec`` pieces."""
    where = f"worker.pools.{name}"
    extra_env, extra_volumes, extra_mounts, problems = volumes.passthrough(
        pool.job_spec, f"{where}.jobSpec"
    )
    env = [
        EnvVar(name=POOL_ENV, value=name),
        EnvVar(name=RESOLVED_CONFIG_ENV, value=encode_resolved_config(loaded.resolved, name)),
        *extra_env,
    ]
    builtin = volumes.builtin_volumes(resolved, pool.tmp_size_limit)
    pod_volumes = [v for v, _ in builtin] + extra_volumes
    mounts = [m for _, m in builtin] + extra_mounts
    problems += volumes.check_unique([e.name for e in env], "env variable", f"{where}.jobSpec.env")
    problems += volumes.check_unique(
        [v.name for v in pod_volumes], "volume name", f"{where}.jobSpec.volumes"
    )
    problems += volumes.check_unique(
        [m.mountPath for m in mounts], "mount path", f"{where}.jobSpec.volumeMounts"
    )
    if problems := problems + _quantity_problems(pool, where):
        raise ConfigValidationError(problems)
    return PodSpec(
        containers=[_container(loaded, name, pool, env, mounts)],
        restartPolicy="OnFailure",
        runtimeClassName=resolved.runtime,  # None leaves the key out entirely
        nodeSelector=dict(pool.job_spec.node_selector) or None,
        # Workers run untrusted code: no API credentials inside their pods.
        automountServiceAccountToken=False,
        volumes=pod_volumes,
    )


def render_worker_job(loaded: LoadedConfig, name: str) -> Job:
    """The worker Job of pool ``name`` (which must be ``mode: local``)."""
    resolved = loaded.resolved.pool(name)
    if resolved.mode != "local":
        raise ConfigError(
            f"pool '{name}' is mode: {resolved.mode}; only mode: local pools run as worker Jobs"
        )
    pool = loaded.model.worker.pools[name]
    labels = pool_labels(name, resolved.container_runtime, resolved.runtime)
    template = PodTemplateSpec(
        metadata=ObjectMeta(labels=labels), spec=_pod_spec(loaded, name, pool, resolved)
    )
    return Job(
        apiVersion="batch/v1",
        kind="Job",
        metadata=ObjectMeta(name=job_name(name), labels=labels),
        spec=K8sJobSpec(template=template),
    )
