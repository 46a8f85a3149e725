"""Pod runtimes -> ``node.k8s.io/v1`` RuntimeClasses: the seed's "create it manually" fix."""

from __future__ import annotations

from collections.abc import Iterable

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.node_v1 import RuntimeClass

from sandpool.config.resolved import ResolvedPool
from sandpool.controller.names import common_labels

__all__ = ["USED_BY_ANNOTATION", "pod_runtimes", "render_runtime_class"]


USED_BY_ANNOTATION = "sandpool.dev/pools"


def pod_runtimes(pools: Iterable[ResolvedPool]) -> dict[str, list[str]]:
    """RuntimeClass name -> the pools whose ``runtime`` names it, both sorted."""
    users: dict[str, list[str]] = {}
    for pool in pools:
        if pool.runtime:
            users.setdefault(pool.runtime, []).append(pool.name)
    return {name: sorted(users[name]) for name in sorted(users)}


def render_runtime_class(name: str, pools: Iterable[str] = ()) -> RuntimeClass:
    """A RuntimeClass whose handler is its own name (the CRI handler must exist on the nodes)."""
    # Shared by several pools, so the pools go in an annotation rather than one pool label.
    annotations = {USED_BY_ANNOTATION: ",".join(pools)} if pools else None
    return RuntimeClass(
        apiVersion="node.k8s.io/v1",
        kind="RuntimeClass",
        metadata=ObjectMeta(name=name, labels=common_labels(), annotations=annotations),
        handler=name,
    )
