"""``k8s apply``: render, preflight, then create or update each object of the deployment.

Nothing is written before every check has passed; a dry run only reads. The Secret keeps the
tokens and passwords the cluster already holds (credentials.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lightkube.resources.core_v1 import Secret

from sandpool.config.loader import LoadedConfig
from sandpool.controller.credentials import credentials, render_secret, secret_values
from sandpool.controller.manifests import Manifest, kind_name, local_pools, render_manifests
from sandpool.controller.preflight import check_runtime_classes, gpu_warnings
from sandpool.controller.wiring import SECRET

__all__ = ["Applied", "ObjectStore", "apply_deployment"]


class ObjectStore(Protocol):
    """What ``apply_deployment`` needs from a cluster (``cluster.Cluster`` provides it)."""

    @property
    def namespace(self) -> str: ...

    def runtime_class_exists(self, name: str) -> bool: ...

    def find(self, kind: type[Manifest], name: str) -> Manifest | None: ...

    def apply(self, obj: Manifest) -> str: ...


@dataclass(frozen=True)
class Applied:
    """What happened (or would happen) to one object."""

    kind: str
    name: str
    action: str

    def line(self, namespace: str) -> str:
        """``deployment.apps/sandpool-gateway created (namespace n)``, kubectl-style."""
        return f"{self.kind}/{self.name} {self.action} (namespace {namespace})"


def _with_secret(cluster: ObjectStore, loaded: LoadedConfig, objects: list[Manifest]) -> None:
    """Put the Secret first: the cluster's tokens and passwords, URLs from the configuration."""
    found = cluster.find(Secret, SECRET)
    kept = secret_values(found if isinstance(found, Secret) else None)
    objects.insert(0, render_secret(credentials(loaded.model, kept)))


def _act(cluster: ObjectStore, obj: Manifest, dry_run: bool) -> Applied:
    name = str(obj.metadata.name) if obj.metadata else ""
    if dry_run:
        exists = cluster.find(type(obj), name) is not None
        action = "would be updated (dry run)" if exists else "would be created (dry run)"
    else:
        action = cluster.apply(obj)
    return Applied(kind_name(obj), name, action)


def apply_deployment(
    loaded: LoadedConfig,
    cluster: ObjectStore,
    only: str | None = None,
    *,
    dry_run: bool = False,
    warn: Callable[[str], None] = lambda _: None,
) -> list[Applied]:
    """Render everything (or ``only`` one pool's workers), preflight, then apply or only look."""
    pools = local_pools(loaded, only)
    objects = render_manifests(loaded, only)  # configuration errors before any request
    for warning in gpu_warnings(pools):
        warn(warning)
    check_runtime_classes(pools, cluster.runtime_class_exists)
    if only is None:
        _with_secret(cluster, loaded, objects)
    return [_act(cluster, obj, dry_run) for obj in objects]
