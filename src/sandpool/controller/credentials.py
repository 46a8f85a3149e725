"""The ``sandpool-secrets`` Secret: the admin key, the worker token, the stores' URLs.

Tokens and passwords are random, made once: ``k8s apply`` keeps the values a cluster already
holds (a new PostgreSQL password would lock the gateway out of the database it initialised),
while URLs are always recomputed from the configuration and the kept passwords.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from sandpool.config.models import SandpoolConfig
from sandpool.controller.names import common_labels
from sandpool.controller.wiring import (
    ADMIN_KEY,
    DATABASE_URL,
    POSTGRES,
    POSTGRES_PASSWORD,
    REDIS,
    REDIS_PASSWORD,
    REDIS_URL,
    SECRET,
    WORKER_TOKEN,
)

__all__ = [
    "POSTGRES_DB",
    "POSTGRES_USER",
    "credentials",
    "generated_keys",
    "render_secret",
    "secret_values",
]

POSTGRES_USER = "sandpool"
POSTGRES_DB = "sandpool"
_PREFIX = {ADMIN_KEY: "sp_admin_", WORKER_TOKEN: "sp_worker_"}


def _random(key: str) -> str:
    return _PREFIX.get(key, "") + secrets.token_urlsafe(32)  # URL-safe: fits in a URL as is


def generated_keys(config: SandpoolConfig) -> list[str]:
    """The keys whose values are made here: tokens, and passwords of the stores deployed."""
    keys = [ADMIN_KEY, WORKER_TOKEN]
    if not config.kubernetes.redis.url:
        keys.append(REDIS_PASSWORD)
    if not config.kubernetes.postgres.url:
        keys.append(POSTGRES_PASSWORD)
    return keys


def credentials(
    config: SandpoolConfig,
    kept: Mapping[str, str] | None = None,
    make: Callable[[str], str] = _random,
) -> dict[str, str]:
    """Every value of the Secret: ``kept`` ones where present, fresh ones otherwise."""
    kept = kept or {}
    values = {key: kept.get(key) or make(key) for key in generated_keys(config)}
    k8s = config.kubernetes
    values[REDIS_URL] = k8s.redis.url or f"redis://:{values[REDIS_PASSWORD]}@{REDIS}:6379/0"
    values[DATABASE_URL] = k8s.postgres.url or (
        f"postgresql+psycopg://{POSTGRES_USER}:{values[POSTGRES_PASSWORD]}"
        f"@{POSTGRES}:5432/{POSTGRES_DB}"
    )
    return dict(sorted(values.items()))


def render_secret(values: Mapping[str, str]) -> Secret:
    """The Secret holding ``values`` (base64 ``data``, as the API server returns it)."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return Secret(
        apiVersion="v1",
        kind="Secret",
        metadata=ObjectMeta(name=SECRET, labels=common_labels()),
        type="Opaque",
        data=data,
    )


def secret_values(secret: Secret | None) -> dict[str, str]:
    """The decoded values of a Secret read from a cluster (empty for None)."""
    if secret is None or not secret.data:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
