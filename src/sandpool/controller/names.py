"""Kubernetes-safe names and the labels every object sandpool renders carries."""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "CONTAINER_RUNTIME_LABEL",
    "MANAGED_BY",
    "POOL_LABEL",
    "common_labels",
    "component_labels",
    "dns_label",
    "pool_labels",
    "pool_selector",
    "worker_name",
]

POOL_LABEL = "sandpool.dev/pool"
CONTAINER_RUNTIME_LABEL = "sandpool.dev/container-runtime"
POD_RUNTIME_LABEL = "sandpool.dev/pod-runtime"
MANAGED_BY = "sandpool"
_MAX = 63
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, *, reserve: int = 0) -> str:
    """``text`` as an RFC 1123 label; altered or cut names get a hash suffix to stay unique."""
    clean = _NOT_ALLOWED.sub("-", text.lower()).strip("-")
    limit = _MAX - reserve
    if clean == text and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = clean[: limit - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def worker_name(pool: str) -> str:
    """The name of the worker Deployment of ``pool``."""
    prefix = "sandpool-worker-"
    return prefix + dns_label(pool, reserve=len(prefix))


def common_labels() -> dict[str, str]:
    """Labels on every object sandpool renders."""
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "sandpool"}


def component_labels(component: str) -> dict[str, str]:
    """The selector of one component (``sandpool-gateway``, ``sandpool-redis``, ...)."""
    return {**common_labels(), "app.kubernetes.io/name": component}


def pool_selector(pool: str) -> dict[str, str]:
    """The selector of a pool's worker pods (a Deployment's selector is immutable: stable keys)."""
    return {**component_labels("sandpool-worker"), POOL_LABEL: dns_label(pool)}


def pool_labels(pool: str, container_runtime: str, pod_runtime: str | None) -> dict[str, str]:
    """Labels naming the pool and its runtimes, on a worker Deployment and on its pods."""
    labels = {
        **pool_selector(pool),
        CONTAINER_RUNTIME_LABEL: container_runtime,
    }
    if pod_runtime:
        labels[POD_RUNTIME_LABEL] = dns_label(pod_runtime)
    return labels
