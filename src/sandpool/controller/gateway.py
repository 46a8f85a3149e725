"""The gateway: a Deployment of ``sandpool server`` (stateless, any number) and its Service.

The gateway runs no user code, so unlike a worker it is unprivileged: not root, no
capabilities, no privilege escalation. The stores' URLs reach its command line through
Kubernetes' ``$(VAR)`` expansion of Secret-backed variables, so the pod spec holds none.
"""

from __future__ import annotations

from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import (
    Capabilities,
    Container,
    ContainerPort,
    HTTPGetAction,
    PodSecurityContext,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from sandpool.config.loader import LoadedConfig
from sandpool.controller import volumes
from sandpool.controller.configmap import config_sha256
from sandpool.controller.names import component_labels
from sandpool.controller.wiring import (
    ADMIN_KEY,
    CONFIG_FILE,
    CONFIG_SHA_ANNOTATION,
    DATABASE_URL,
    GATEWAY,
    REDIS_URL,
    WORKER_TOKEN,
    WORKER_TOKEN_ENV,
    config_mount,
    pull_secrets,
    secret_env,
)
from sandpool.controller.workers import worker_image

__all__ = ["NONROOT_UID", "gateway_args", "render_gateway", "render_gateway_service"]

NONROOT_UID = 65532
_ADMIN_KEY_ENV = "SANDPOOL_ADMIN_KEY"  # sandpool.service.auth.ADMIN_KEY_ENV (not imported)
_REDIS_ENV = "SANDPOOL_REDIS_URL"
_DATABASE_ENV = "SANDPOOL_DATABASE_URL"


def gateway_args(loaded: LoadedConfig) -> list[str]:
    """``sandpool server`` as issue 17's contract names it, listening on every address."""
    port = loaded.model.kubernetes.gateway.port
    return ["sandpool", "server", "--listen", f"0.0.0.0:{port}",
            "--redis", f"$({_REDIS_ENV})", "--database", f"$({_DATABASE_ENV})",
            "-c", CONFIG_FILE]  # fmt: skip


def _probe(path: str, failures: int) -> Probe:
    action = HTTPGetAction(path=path, port="http")
    return Probe(httpGet=action, periodSeconds=10, timeoutSeconds=3, failureThreshold=failures)


def _mounted(loaded: LoadedConfig) -> list[volumes.Mounted]:
    """Writable scratch (the image's own files are root's) and the configuration."""
    state = volumes.empty_dir("sandpool-state", loaded.resolved.state_dir)
    return [state, volumes.empty_dir("sandpool-tmp", "/tmp"), config_mount()]


def _container(loaded: LoadedConfig) -> Container:
    settings = loaded.model.kubernetes.gateway
    wanted = {"cpu": settings.cpu, "memory": settings.memory}
    return Container(
        name="gateway",
        image=worker_image(loaded.model.worker),  # one image for both: sandpool itself
        imagePullPolicy="IfNotPresent",
        args=gateway_args(loaded),
        env=[
            secret_env(_ADMIN_KEY_ENV, ADMIN_KEY),
            secret_env(WORKER_TOKEN_ENV, WORKER_TOKEN),
            secret_env(_REDIS_ENV, REDIS_URL),
            secret_env(_DATABASE_ENV, DATABASE_URL),
        ],
        ports=[ContainerPort(name="http", containerPort=settings.port, protocol="TCP")],
        livenessProbe=_probe("/healthz", failures=3),
        readinessProbe=_probe("/readyz", failures=1),
        resources=ResourceRequirements(requests=wanted, limits=dict(wanted)),
        securityContext=SecurityContext(
            allowPrivilegeEscalation=False, capabilities=Capabilities(drop=["ALL"])
        ),
        volumeMounts=[mount for _, mount in _mounted(loaded)],
    )


def _pod_spec(loaded: LoadedConfig) -> PodSpec:
    return PodSpec(
        containers=[_container(loaded)],
        securityContext=PodSecurityContext(
            runAsNonRoot=True,
            runAsUser=NONROOT_UID,
            runAsGroup=NONROOT_UID,
            seccompProfile=SeccompProfile(type="RuntimeDefault"),
        ),
        automountServiceAccountToken=False,
        enableServiceLinks=False,
        imagePullSecrets=pull_secrets(loaded.model),
        volumes=[volume for volume, _ in _mounted(loaded)],
    )


def render_gateway(loaded: LoadedConfig) -> Deployment:
    """``sandpool-gateway``: ``kubernetes.gateway.replicas`` pods of ``sandpool server``."""
    labels = component_labels(GATEWAY)
    annotations = {CONFIG_SHA_ANNOTATION: config_sha256(loaded.model)}
    return Deployment(
        apiVersion="apps/v1",
        kind="Deployment",
        metadata=ObjectMeta(name=GATEWAY, labels=labels),
        spec=DeploymentSpec(
            replicas=loaded.model.kubernetes.gateway.replicas,
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels, annotations=annotations),
                spec=_pod_spec(loaded),
            ),
        ),
    )


def render_gateway_service(loaded: LoadedConfig) -> Service:
    """``sandpool-gateway``: what clients and workers connect to (``http://sandpool-gateway:P``)."""
    settings = loaded.model.kubernetes.gateway
    labels = component_labels(GATEWAY)
    port = ServicePort(name="http", port=settings.port, targetPort="http", protocol="TCP")
    return Service(
        apiVersion="v1",
        kind="Service",
        metadata=ObjectMeta(name=GATEWAY, labels=labels),
        spec=ServiceSpec(type=settings.service_type, selector=labels, ports=[port]),
    )
