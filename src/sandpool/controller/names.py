"""Kubernetes-safe names and the labels every object sandpool renders carries."""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "CONTAINER_RUNTIME_LABEL",
    "MANAGED_BY",
    "POOL_LABEL",
    "common_labels",
    "dns_label",
    "job_name",
    "pool_labels",
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


def job_name(pool: str) -> str:
    """The name of the worker Job of ``pool``."""
    prefix = "sandpool-worker-"
    return prefix + dns_label(pool, reserve=len(prefix))


def common_labels() -> dict[str, str]:
    """Labels on every object sandpool renders."""
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "sandpool"}


def pool_labels(pool: str, container_runtime: str, pod_runtime: str | None) -> dict[str, str]:
    """Labels naming the pool and its runtimes, on a Job and on its pods."""
    labels = {
        **common_labels(),
        "app.kubernetes.io/name": "sandpool-worker",
        POOL_LABEL: dns_label(pool),
        CONTAINER_RUNTIME_LABEL: container_runtime,
    }
    if pod_runtime:
        labels[POD_RUNTIME_LABEL] = dns_label(pod_runtime)
    return labels
