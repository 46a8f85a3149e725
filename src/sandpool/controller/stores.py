"""Redis and PostgreSQL for a small install: one pod each, a Service, and a NetworkPolicy.

Rendered only for a store whose ``kubernetes.<store>.url`` is empty (else it is external).
Both use the images' own entrypoints (``args``, not ``command``), which drop root themselves.
Each takes connections from the gateway's pods only: worker pods run untrusted code, and a
sandbox with ``network: open`` must not reach the stores (the policy needs a CNI that enforces
NetworkPolicies; the stores' passwords hold either way).
"""

from __future__ import annotations

from lightkube.models.apps_v1 import DeploymentSpec, DeploymentStrategy, StatefulSetSpec
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvVar,
    ExecAction,
    PersistentVolumeClaimSpec,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ServicePort,
    ServiceSpec,
    TCPSocketAction,
    Volume,
    VolumeMount,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.networking_v1 import (
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
)
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import PersistentVolumeClaim, Service
from lightkube.resources.networking_v1 import NetworkPolicy

from sandpool.config.kubernetes import PostgresDeployment, RedisDeployment
from sandpool.config.models import SandpoolConfig
from sandpool.controller.credentials import POSTGRES_DB, POSTGRES_USER
from sandpool.controller.names import component_labels
from sandpool.controller.wiring import (
    GATEWAY,
    POSTGRES,
    POSTGRES_PASSWORD,
    REDIS,
    REDIS_PASSWORD,
    pull_secrets,
    secret_env,
)

__all__ = [
    "POSTGRES_PORT",
    "REDIS_PORT",
    "Store",
    "render_postgres",
    "render_redis",
    "render_stores",
]

REDIS_PORT = 6379
POSTGRES_PORT = 5432
_PGDATA = "/var/lib/postgresql/data"

Store = Deployment | StatefulSet | Service | NetworkPolicy


def _service(name: str, port: int, *, headless: bool = False) -> Service:
    labels = component_labels(name)
    return Service(
        apiVersion="v1",
        kind="Service",
        metadata=ObjectMeta(name=name, labels=labels),
        spec=ServiceSpec(
            clusterIP="None" if headless else None,
            selector=labels,
            ports=[ServicePort(name="db", port=port, targetPort="db", protocol="TCP")],
        ),
    )


def _gateway_only(name: str, port: int) -> NetworkPolicy:
    """Ingress to ``name`` on ``port`` from the gateway's pods, from nothing else."""
    peer = NetworkPolicyPeer(podSelector=LabelSelector(matchLabels=component_labels(GATEWAY)))
    rule = NetworkPolicyIngressRule(
        from_=[peer], ports=[NetworkPolicyPort(port=port, protocol="TCP")]
    )
    return NetworkPolicy(
        apiVersion="networking.k8s.io/v1",
        kind="NetworkPolicy",
        metadata=ObjectMeta(name=f"{name}-from-gateway", labels=component_labels(name)),
        spec=NetworkPolicySpec(
            podSelector=LabelSelector(matchLabels=component_labels(name)),
            policyTypes=["Ingress"],
            ingress=[rule],
        ),
    )


def _pod(config: SandpoolConfig, container: Container, volumes: list[Volume]) -> PodSpec:
    return PodSpec(
        containers=[container],
        automountServiceAccountToken=False,
        enableServiceLinks=False,
        imagePullSecrets=pull_secrets(config),
        volumes=volumes or None,
    )


def render_redis(config: SandpoolConfig, redis: RedisDeployment) -> Deployment:
    """One Redis without persistence: it holds live state only (the durable state is SQL)."""
    labels = component_labels(REDIS)
    container = Container(
        name="redis",
        image=redis.image,
        args=[
            "redis-server",
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        env=[secret_env("REDIS_PASSWORD", REDIS_PASSWORD)],
        ports=[ContainerPort(name="db", containerPort=REDIS_PORT, protocol="TCP")],
        readinessProbe=Probe(tcpSocket=TCPSocketAction(port="db"), periodSeconds=5),
        volumeMounts=[VolumeMount(name="data", mountPath="/data")],
    )
    data = Volume(name="data", emptyDir=EmptyDirVolumeSource())
    return Deployment(
        apiVersion="apps/v1",
        kind="Deployment",
        metadata=ObjectMeta(name=REDIS, labels=labels),
        spec=DeploymentSpec(
            replicas=1,
            selector=LabelSelector(matchLabels=labels),
            strategy=DeploymentStrategy(type="Recreate"),  # never two Redis at once
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels), spec=_pod(config, container, [data])
            ),
        ),
    )


def _postgres_container(postgres: PostgresDeployment) -> Container:
    ready = ["pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB]
    return Container(
        name="postgres",
        image=postgres.image,
        env=[
            EnvVar(name="POSTGRES_USER", value=POSTGRES_USER),
            EnvVar(name="POSTGRES_DB", value=POSTGRES_DB),
            secret_env("POSTGRES_PASSWORD", POSTGRES_PASSWORD),
            # A volume's root may hold lost+found, which initdb refuses: use a directory in it.
            EnvVar(name="PGDATA", value=f"{_PGDATA}/pgdata"),
        ],
        ports=[ContainerPort(name="db", containerPort=POSTGRES_PORT, protocol="TCP")],
        readinessProbe=Probe(exec=ExecAction(command=ready), periodSeconds=5),
        volumeMounts=[VolumeMount(name="data", mountPath=_PGDATA)],
    )


def render_postgres(config: SandpoolConfig, postgres: PostgresDeployment) -> StatefulSet:
    """One PostgreSQL on a volume of ``storage`` (a PersistentVolumeClaim per pod)."""
    labels = component_labels(POSTGRES)
    claim = PersistentVolumeClaim(
        metadata=ObjectMeta(name="data"),
        spec=PersistentVolumeClaimSpec(
            accessModes=["ReadWriteOnce"],
            storageClassName=postgres.storage_class_name,
            resources=VolumeResourceRequirements(requests={"storage": postgres.storage}),
        ),
    )
    return StatefulSet(
        apiVersion="apps/v1",
        kind="StatefulSet",
        metadata=ObjectMeta(name=POSTGRES, labels=labels),
        spec=StatefulSetSpec(
            serviceName=POSTGRES,
            replicas=1,
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels),
                spec=_pod(config, _postgres_container(postgres), []),
            ),
            volumeClaimTemplates=[claim],
        ),
    )


def render_stores(config: SandpoolConfig) -> list[Store]:
    """The objects of each store sandpool deploys (none for an external one)."""
    k8s = config.kubernetes
    objects: list[Store] = []
    if not k8s.redis.url:
        objects += [render_redis(config, k8s.redis), _service(REDIS, REDIS_PORT),
                    _gateway_only(REDIS, REDIS_PORT)]  # fmt: skip
    if not k8s.postgres.url:
        objects += [render_postgres(config, k8s.postgres),
                    _service(POSTGRES, POSTGRES_PORT, headless=True),
                    _gateway_only(POSTGRES, POSTGRES_PORT)]  # fmt: skip
    return objects
