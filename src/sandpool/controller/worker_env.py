"""The contract between a worker pod and ``sandpool worker``: env names, the probe, the payload.

Kept free of Kubernetes imports so the worker reads it without loading the client library.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from sandpool.config.resolved import ResolvedConfig
from sandpool.errors import ConfigError

__all__ = [
    "HEALTH_PATH",
    "HEALTH_PORT",
    "POOL_ENV",
    "READY_PATH",
    "RESOLVED_CONFIG_ENV",
    "decode_resolved_config",
    "encode_resolved_config",
]

# Not under SANDPOOL_WORKER_: that prefix is reserved for configuration keys (config.sources).
POOL_ENV = "SANDPOOL_POOL"
RESOLVED_CONFIG_ENV = "SANDPOOL_RESOLVED_CONFIG"
HEALTH_PORT = 8081
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


def encode_resolved_config(config: ResolvedConfig, pool: str) -> str:
    """The resolved configuration cut down to one pool, as compact JSON for an env value."""
    only = dataclasses.replace(config, pools={pool: config.pool(pool)})
    return json.dumps(only.to_json(), separators=(",", ":"), sort_keys=True)


def decode_resolved_config(environ: Mapping[str, str]) -> ResolvedConfig | None:
    """The configuration a worker pod got in ``$SANDPOOL_RESOLVED_CONFIG``, or None when unset."""
    raw = environ.get(RESOLVED_CONFIG_ENV, "")
    if not raw:
        return None
    try:
        return ResolvedConfig.from_json(json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{RESOLVED_CONFIG_ENV} does not hold a resolved configuration: {exc}",
            hint="it is set by the worker Deployment that `sandpool k8s render` builds",
        ) from exc
