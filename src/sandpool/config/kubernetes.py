"""The ``kubernetes`` section: what ``sandpool k8s render/apply`` deploys around the worker pools.

Only the deployment reads it (the gateway, the stores, replicas, images); a worker or a gateway
process ignores it. Where Beta9 has a name it is kept: ``imagePullSecrets`` (Beta9's
``worker.imagePullSecrets``); Beta9's ``database.redis`` / ``database.postgres`` become
``redis`` / ``postgres`` here, each either deployed by sandpool (``url`` empty) or external.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from sandpool.config.quantities import check_kube_quantity

__all__ = ["GatewayDeployment", "KubernetesConfig", "PostgresDeployment", "RedisDeployment"]

KubeQuantity = Annotated[StrictStr, AfterValidator(check_kube_quantity)]
Replicas = Annotated[StrictInt, Field(ge=0, le=1000)]


def _url(schemes: tuple[str, ...]) -> AfterValidator:
    def check(text: str) -> str:
        if text and not text.startswith(schemes):
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)} (or empty)")
        return text

    return AfterValidator(check)


class _Model(BaseModel):
    # The same strict camelCase rules as sandpool.config.models (not imported: models imports us).
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class GatewayDeployment(_Model):
    """The gateway: ``sandpool server`` behind one Service."""

    replicas: Replicas = 2
    port: StrictInt = Field(default=8080, ge=1, le=65535)
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    cpu: KubeQuantity = "500m"
    memory: KubeQuantity = "512Mi"


class RedisDeployment(_Model):
    """Live state and dispatch. ``url`` set: an external Redis; empty: sandpool deploys one."""

    url: Annotated[StrictStr, _url(("redis://", "rediss://", "unix://"))] = ""
    image: StrictStr = "docker.io/library/redis:7.2"


class PostgresDeployment(_Model):
    """Durable state. ``url`` set: an external database (a SQLAlchemy URL); empty: deployed."""

    url: Annotated[StrictStr, _url(("postgresql://", "postgresql+"))] = ""
    image: StrictStr = "docker.io/library/postgres:15"
    storage: KubeQuantity = "10Gi"
    storage_class_name: StrictStr | None = None


class KubernetesConfig(_Model):
    """Everything the deployment needs beyond the pools themselves."""

    gateway: GatewayDeployment = Field(default_factory=GatewayDeployment)
    worker_replicas: Replicas = 1
    pool_replicas: dict[StrictStr, Replicas] = Field(default_factory=dict)
    image_pull_secrets: list[StrictStr] = Field(default_factory=list)
    redis: RedisDeployment = Field(default_factory=RedisDeployment)
    postgres: PostgresDeployment = Field(default_factory=PostgresDeployment)

    def replicas(self, pool: str) -> int:
        """Worker pods of ``pool``: its own count, else ``workerReplicas``."""
        return self.pool_replicas.get(pool, self.worker_replicas)
