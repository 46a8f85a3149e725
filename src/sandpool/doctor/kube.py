"""``--kube``: the cluster answers, and every RuntimeClass the pools name exists.

A missing RuntimeClass is the seed's ``RuntimeClass "nvidia" not found``, with the controller
preflight's three fixes; the cluster is reached through the controller's ``Cluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from sandpool.config.resolved import ResolvedPool
from sandpool.controller.preflight import missing_runtime_class_message
from sandpool.doctor.report import HOST, Check, fail, ok
from sandpool.errors import ClusterUnreachable, KubernetesError

__all__ = ["PROBE_NAME", "ClusterFactory", "RuntimeClassLookup", "kube_checks"]

# Looked up when no pool names a RuntimeClass: any answer (404 included) proves the API answers.
PROBE_NAME = "sandpool-doctor-reachability-probe"


class RuntimeClassLookup(Protocol):
    """What the doctor needs from a cluster (``controller.cluster.Cluster`` provides it)."""

    @property
    def namespace(self) -> str: ...

    def runtime_class_exists(self, name: str) -> bool: ...

    def close(self) -> None: ...


ClusterFactory = Callable[[], RuntimeClassLookup]


def _lookup(factory: ClusterFactory, names: list[str]) -> tuple[str, dict[str, bool]]:
    """Connect, look every name up, close; KubernetesError when the cluster fails us."""
    cluster = factory()
    try:
        found = {name: cluster.runtime_class_exists(name) for name in names or [PROBE_NAME]}
        return cluster.namespace, found
    finally:
        cluster.close()


def _missing(name: str, pool: str) -> Check:
    fixes = missing_runtime_class_message(name, [pool]).splitlines()[1:]
    fix = "one of:\n" + "\n".join(line.strip() for line in fixes)
    return fail(pool, "runtimeClass", f'RuntimeClass "{name}" not found in the cluster', fix)


def kube_checks(pools: Iterable[ResolvedPool], factory: ClusterFactory) -> list[Check]:
    """Reachability, then one line per ``mode: local`` pool that names a pod runtime."""
    named = [p for p in pools if p.mode == "local" and p.runtime]
    try:
        namespace, found = _lookup(factory, sorted({p.runtime or "" for p in named}))
    except ClusterUnreachable as exc:
        fix = exc.hint or "check the kubeconfig and that the API server is up"
        return [fail(HOST, "cluster", f"not reachable: {exc.message}", fix)]
    except KubernetesError as exc:
        fix = "let sandpool's credentials get runtimeclasses.node.k8s.io (RBAC)"
        return [fail(HOST, "cluster", exc.message, fix)]
    checks = [ok(HOST, "cluster", f"API server answers (namespace {namespace})")]
    for pool in named:
        name = pool.runtime or ""
        if found[name]:
            checks.append(ok(pool.name, "runtimeClass", f'RuntimeClass "{name}" exists'))
        else:
            checks.append(_missing(name, pool.name))
    return checks
