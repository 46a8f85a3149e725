"""A whole configuration -> the objects to create, and their multi-document YAML."""

from __future__ import annotations

import io

from lightkube.resources.batch_v1 import Job
from lightkube.resources.node_v1 import RuntimeClass
from ruamel.yaml import YAML

from sandpool.config.loader import LoadedConfig
from sandpool.config.resolved import ResolvedPool
from sandpool.controller.jobs import render_worker_job
from sandpool.controller.runtimeclasses import pod_runtimes, render_runtime_class
from sandpool.errors import ConfigError

__all__ = ["Manifest", "local_pools", "render_manifests", "to_yaml"]

Manifest = Job | RuntimeClass


def local_pools(loaded: LoadedConfig, only: str | None = None) -> list[ResolvedPool]:
    """The ``mode: local`` pools, or just ``only`` (an unknown or external pool is an error)."""
    resolved = loaded.resolved
    if only is None:
        return [pool for pool in resolved.pools.values() if pool.mode == "local"]
    pool = resolved.pool(only)
    if pool.mode != "local":
        raise ConfigError(
            f"pool '{only}' is mode: {pool.mode}; only mode: local pools run as worker Jobs"
        )
    return [pool]


def render_manifests(
    loaded: LoadedConfig, only: str | None = None, *, runtime_classes: bool = False
) -> list[Manifest]:
    """RuntimeClasses first (when asked for), then one worker Job per local pool."""
    pools = local_pools(loaded, only)
    objects: list[Manifest] = []
    if runtime_classes:
        objects += [render_runtime_class(n, users) for n, users in pod_runtimes(pools).items()]
    objects += [render_worker_job(loaded, pool.name) for pool in pools]
    return objects


def to_yaml(objects: list[Manifest]) -> str:
    """Multi-document YAML, keys in the models' order, ready for ``kubectl apply -f -``."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump_all([obj.to_dict() for obj in objects], out)
    return out.getvalue()
