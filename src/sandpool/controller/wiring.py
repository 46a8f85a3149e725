"""How the deployment's pieces find each other: object names, the Secret's keys, the config file.

Every name one rendered object uses to reach another is defined here, once.
"""

from __future__ import annotations

from lightkube.models.core_v1 import (
    ConfigMapVolumeSource,
    EnvVar,
    EnvVarSource,
    LocalObjectReference,
    SecretKeySelector,
    Volume,
    VolumeMount,
)

from sandpool.config.models import SandpoolConfig

__all__ = [
    "ADMIN_KEY",
    "CONFIG_FILE",
    "CONFIG_MAP",
    "CONFIG_SHA_ANNOTATION",
    "DATABASE_URL",
    "GATEWAY",
    "POSTGRES",
    "POSTGRES_PASSWORD",
    "REDIS",
    "REDIS_PASSWORD",
    "REDIS_URL",
    "SECRET",
    "WORKER_TOKEN",
    "WORKER_TOKEN_ENV",
    "config_mount",
    "gateway_url",
    "pull_secrets",
    "secret_env",
]

CONFIG_MAP = "sandpool-config"
CONFIG_DIR = "/etc/sandpool"
CONFIG_FILE = f"{CONFIG_DIR}/sandpool.yaml"
CONFIG_SHA_ANNOTATION = "sandpool.dev/config-sha256"  # a changed config rolls the pods

SECRET = "sandpool-secrets"
# Keys of the Secret. Passwords and tokens are made once and kept; URLs follow from them.
ADMIN_KEY = "admin-key"
WORKER_TOKEN = "worker-token"
DATABASE_URL = "database-url"
REDIS_URL = "redis-url"
POSTGRES_PASSWORD = "postgres-password"
REDIS_PASSWORD = "redis-password"

WORKER_TOKEN_ENV = "SANDPOOL_WORKER_TOKEN"  # issue 17's contract, read by `sandpool worker`

GATEWAY = "sandpool-gateway"  # the Deployment and its Service
REDIS = "sandpool-redis"
POSTGRES = "sandpool-postgres"


def gateway_url(config: SandpoolConfig) -> str:
    """The gateway as workers reach it: its Service's short name, in their own namespace."""
    return f"http://{GATEWAY}:{config.kubernetes.gateway.port}"


def secret_env(name: str, key: str) -> EnvVar:
    """An env variable whose value is ``key`` of the sandpool Secret (never in the pod spec)."""
    ref = SecretKeySelector(name=SECRET, key=key)
    return EnvVar(name=name, valueFrom=EnvVarSource(secretKeyRef=ref))


def config_mount() -> tuple[Volume, VolumeMount]:
    """The ConfigMap as ``/etc/sandpool/sandpool.yaml``, read-only."""
    volume = Volume(name="sandpool-config", configMap=ConfigMapVolumeSource(name=CONFIG_MAP))
    return volume, VolumeMount(name="sandpool-config", mountPath=CONFIG_DIR, readOnly=True)


def pull_secrets(config: SandpoolConfig) -> list[LocalObjectReference] | None:
    """``kubernetes.imagePullSecrets`` for a pod spec (None leaves the key out)."""
    names = config.kubernetes.image_pull_secrets
    return [LocalObjectReference(name=n) for n in names] or None
