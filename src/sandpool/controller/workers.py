"""One pool -> one ``apps/v1`` Deployment running ``sandpool worker --pool P --gateway URL``.

Pure functions. Deployments, not Jobs as Beta9 has: Beta9's scheduler starts one Job per worker
on demand; sandpool keeps a fixed number of long-lived workers per pool that register with the
gateway, so a Deployment fits (replicas, rolling updates, pods replaced when a node goes).
"""

from __future__ import annotations

import re

from lightkube.models.apps_v1 import (
    DeploymentSpec,
    DeploymentStrategy,
    RollingUpdateDeployment,
)
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    EnvVar,
    EnvVarSource,
    HTTPGetAction,
    ObjectFieldSelector,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SecurityContext,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment

from sandpool.config.loader import LoadedConfig
from sandpool.config.models import PoolConfig, WorkerConfig
from sandpool.config.resolved import ResolvedPool
from sandpool.controller import volumes
from sandpool.controller.capacity import capacity_args
from sandpool.controller.configmap import config_sha256
from sandpool.controller.names import pool_labels, pool_selector, worker_name
from sandpool.controller.wiring import (
    CONFIG_FILE,
    CONFIG_SHA_ANNOTATION,
    WORKER_TOKEN,
    WORKER_TOKEN_ENV,
    config_mount,
    gateway_url,
    pull_secrets,
    secret_env,
)
from sandpool.controller.worker_env import (
    HEALTH_PATH,
    HEALTH_PORT,
    POOL_ENV,
    READY_PATH,
    RESOLVED_CONFIG_ENV,
    encode_resolved_config,
)
from sandpool.errors import ConfigError, ConfigValidationError

__all__ = ["GPU_RESOURCE", "TERMINATION_GRACE_S", "render_worker_deployment", "worker_image"]

GPU_RESOURCE = "nvidia.com/gpu"
TERMINATION_GRACE_S = 120  # Beta9's floor: a worker stops its containers before it exits
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


def worker_args(loaded: LoadedConfig, name: str) -> list[str]:
    """The worker's command line (issue 17's contract); the image's entrypoint (tini) runs it."""
    url = gateway_url(loaded.model)
    sizing = loaded.model.worker.pools[name].pool_sizing
    return ["sandpool", "worker", "--pool", name, "--gateway", url, *capacity_args(sizing),
            "-c", CONFIG_FILE]  # fmt: skip


def _container(
    loaded: LoadedConfig, name: str, pool: PoolConfig, env: list[EnvVar], mounts: list[VolumeMount]
) -> Container:
    """The worker container: the image, the worker command, probes, privileges, resources."""
    return Container(
        name="worker",
        image=worker_image(loaded.model.worker),
        imagePullPolicy="IfNotPresent",  # a tag built and loaded on the nodes works unpushed
        args=worker_args(loaded, name),
        env=env,
        ports=[ContainerPort(name="health", containerPort=HEALTH_PORT, protocol="TCP")],
        livenessProbe=_probe(HEALTH_PATH, failures=3),
        readinessProbe=_probe(READY_PATH, failures=1),
        resources=_resources(pool),
        # Workers create namespaces, mounts and cgroups for user containers (SPEC §2). On a
        # cgroup v2 node a privileged container gets its own cgroup namespace with
        # /sys/fs/cgroup writable, which is what the worker needs (README, "Kubernetes").
        securityContext=SecurityContext(privileged=True),
        volumeMounts=mounts,
    )


def _env(loaded: LoadedConfig, name: str) -> list[EnvVar]:
    pod_ip = ObjectFieldSelector(fieldPath="status.podIP")
    return [
        EnvVar(name=POOL_ENV, value=name),
        EnvVar(name=RESOLVED_CONFIG_ENV, value=encode_resolved_config(loaded.resolved, name)),
        secret_env(WORKER_TOKEN_ENV, WORKER_TOKEN),
        # The address the worker gives the gateway for its internal endpoint (Beta9's name).
        EnvVar(name="POD_IP", valueFrom=EnvVarSource(fieldRef=pod_ip)),
    ]


def _mounted(
    loaded: LoadedConfig, pool: PoolConfig, resolved: ResolvedPool
) -> list[volumes.Mounted]:
    """sandpool's own volumes: scratch, gVisor's root, the state directory, the configuration."""
    state = volumes.empty_dir("sandpool-state", loaded.resolved.state_dir)
    builtin = volumes.builtin_volumes(resolved, pool.tmp_size_limit)
    return [*builtin, state, config_mount()]


def _pod_volumes(
    loaded: LoadedConfig, name: str, pool: PoolConfig, resolved: ResolvedPool
) -> tuple[list[EnvVar], list[Volume], list[VolumeMount]]:
    """Env, volumes and mounts: sandpool's, then ``jobSpec``'s; ConfigValidationError if bad."""
    where = f"worker.pools.{name}"
    extra_env, extra_volumes, extra_mounts, problems = volumes.passthrough(
        pool.job_spec, f"{where}.jobSpec"
    )
    env = [*_env(loaded, name), *extra_env]
    builtin = _mounted(loaded, pool, resolved)
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
    return env, pod_volumes, mounts


def _pod_spec(loaded: LoadedConfig, name: str, pool: PoolConfig, resolved: ResolvedPool) -> PodSpec:
    """The pod of a worker; raises ConfigValidationError for unusable ``jobSpec`` pieces."""
    env, pod_volumes, mounts = _pod_volumes(loaded, name, pool, resolved)
    return PodSpec(
        containers=[_container(loaded, name, pool, env, mounts)],
        runtimeClassName=resolved.runtime,  # None leaves the key out entirely
        nodeSelector=dict(pool.job_spec.node_selector) or None,
        # Workers run untrusted code: no API credentials inside their pods, and no
        # SANDPOOL_GATEWAY_PORT-style variables from Services either.
        automountServiceAccountToken=False,
        enableServiceLinks=False,
        imagePullSecrets=pull_secrets(loaded.model),
        terminationGracePeriodSeconds=TERMINATION_GRACE_S,
        volumes=pod_volumes,
    )


def render_worker_deployment(loaded: LoadedConfig, name: str) -> Deployment:
    """The worker Deployment of pool ``name`` (which must be ``mode: local``)."""
    resolved = loaded.resolved.pool(name)
    if resolved.mode != "local":
        raise ConfigError(
            f"pool '{name}' is mode: {resolved.mode}; only mode: local pools run as workers here"
        )
    pool = loaded.model.worker.pools[name]
    labels = pool_labels(name, resolved.container_runtime, resolved.runtime)
    template = PodTemplateSpec(
        metadata=ObjectMeta(
            labels=labels, annotations={CONFIG_SHA_ANNOTATION: config_sha256(loaded.model)}
        ),
        spec=_pod_spec(loaded, name, pool, resolved),
    )
    # One pod at a time, never a surplus one: a GPU pool has no spare GPUs for a surge.
    rolling = RollingUpdateDeployment(maxSurge=0, maxUnavailable=1)
    return Deployment(
        apiVersion="apps/v1",
        kind="Deployment",
        metadata=ObjectMeta(name=worker_name(name), labels=labels),
        spec=DeploymentSpec(
            replicas=loaded.model.kubernetes.replicas(name),
            selector=LabelSelector(matchLabels=pool_selector(name)),
            strategy=DeploymentStrategy(type="RollingUpdate", rollingUpdate=rolling),
            template=template,
        ),
    )
