"""A whole configuration -> the objects of the deployment, in apply order, and their YAML.

Order: RuntimeClasses (when asked for), the Secret, the ConfigMap, Redis and PostgreSQL (when
deployed here), the gateway, then one worker Deployment per ``mode: local`` pool. With a pool
named (``--pool``), only that pool's workers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.node_v1 import RuntimeClass
from ruamel.yaml import YAML

from sandpool.config.loader import LoadedConfig
from sandpool.config.resolved import ResolvedPool
from sandpool.controller.configmap import render_config_map
from sandpool.controller.credentials import render_secret
from sandpool.controller.gateway import render_gateway, render_gateway_service
from sandpool.controller.runtimeclasses import pod_runtimes, render_runtime_class
from sandpool.controller.stores import render_stores
from sandpool.controller.workers import render_worker_deployment
from sandpool.errors import ConfigError, ConfigValidationError

__all__ = ["Manifest", "kind_name", "local_pools", "render_manifests", "to_yaml"]

Manifest = RuntimeClass | Secret | ConfigMap | Deployment | StatefulSet | Service | NetworkPolicy


def local_pools(loaded: LoadedConfig, only: str | None = None) -> list[ResolvedPool]:
    """The ``mode: local`` pools, or just ``only`` (an unknown or external pool is an error)."""
    resolved = loaded.resolved
    if only is None:
        return [pool for pool in resolved.pools.values() if pool.mode == "local"]
    pool = resolved.pool(only)
    if pool.mode != "local":
        raise ConfigError(
            f"pool '{only}' is mode: {pool.mode}; only mode: local pools run as workers here"
        )
    return [pool]


def _check_pool_replicas(loaded: LoadedConfig) -> None:
    """``kubernetes.poolReplicas`` may only name pools that exist."""
    pools = loaded.model.worker.pools
    unknown = [name for name in loaded.model.kubernetes.pool_replicas if name not in pools]
    if unknown:
        have = ", ".join(sorted(pools)) or "none"
        raise ConfigValidationError(
            [
                f"kubernetes.poolReplicas.{name}: no pool of this name (pools: {have})"
                for name in unknown
            ]
        )


def render_manifests(
    loaded: LoadedConfig,
    only: str | None = None,
    *,
    runtime_classes: bool = False,
    secret: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Every object, in apply order (module docstring); the Secret only when ``secret`` given."""
    pools = local_pools(loaded, only)
    _check_pool_replicas(loaded)
    objects: list[Manifest] = []
    if runtime_classes:
        objects += [render_runtime_class(n, users) for n, users in pod_runtimes(pools).items()]
    if only is None:
        if secret is not None:
            objects.append(render_secret(secret))
        objects.append(render_config_map(loaded.model))
        objects += render_stores(loaded.model)
        objects += [render_gateway(loaded), render_gateway_service(loaded)]
    objects += [render_worker_deployment(loaded, pool.name) for pool in pools]
    return objects


def kind_name(obj: Manifest) -> str:
    """kubectl's name for an object's kind: ``deployment.apps``, ``service``, ..."""
    group = (obj.apiVersion or "v1").rpartition("/")[0]
    kind = (obj.kind or "").lower()
    return f"{kind}.{group}" if group else kind


def to_yaml(objects: list[Manifest]) -> str:
    """Multi-document YAML, keys in the models' order, ready for ``kubectl apply -f -``."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump_all([obj.to_dict() for obj in objects], out)
    return out.getvalue()
