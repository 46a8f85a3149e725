"""The only module that talks to the Kubernetes API server (through lightkube).

Configuration, in lightkube's order: in-cluster service account, then ``$KUBECONFIG``, then
``~/.kube/config``; ``kubeconfig=`` names a file explicitly. Every foreign exception is
translated here: no cluster configuration or no answer -> ClusterUnreachable, any other API
failure -> KubernetesError naming the object and the server's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.resources.node_v1 import RuntimeClass

from sandpool.controller.manifests import Manifest
from sandpool.errors import ClusterUnreachable, KubernetesError

__all__ = ["FIELD_MANAGER", "Cluster"]

FIELD_MANAGER = "sandpool"


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn lightkube and httpx2 exceptions raised while doing ``what`` into sandpool errors."""
    try:
        yield
    except ApiError as exc:
        status = exc.status
        raise KubernetesError(f"{what}: {status.code} {status.reason}: {status.message}") from exc
    except (ConfigError, httpx2.TransportError, OSError) as exc:
        hint = "check $KUBECONFIG, ~/.kube/config or the in-cluster service account"
        raise ClusterUnreachable(f"{what}: {exc}", hint=hint) from exc


def _not_found(exc: ApiError) -> bool:
    return exc.status.code == 404


def _immutable(exc: ApiError) -> bool:
    """A 422 for an immutable field (a selector, a StatefulSet's claims), not an invalid object."""
    return exc.status.code == 422 and "immutable" in (exc.status.message or "")


class Cluster:
    """One namespace of one cluster; holds an HTTP connection pool, so ``close()`` it when done.

    Not thread-safe beyond what lightkube's Client is; one Cluster per command.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, namespace: str | None = None) -> Cluster:
        """A client from ``kubeconfig`` or from the environment (see the module docstring)."""
        with _translated("cannot load the Kubernetes configuration"):
            config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
            return cls(Client(config, namespace=namespace, field_manager=FIELD_MANAGER))

    @property
    def namespace(self) -> str:
        """The namespace the deployment goes to."""
        return str(self._client.namespace)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def runtime_class_exists(self, name: str) -> bool:
        """Whether the cluster has the RuntimeClass ``name``."""
        with _translated(f'cannot read RuntimeClass "{name}"'):
            try:
                self._client.get(RuntimeClass, name)
            except ApiError as exc:
                if _not_found(exc):
                    return False
                raise
        return True

    def find(self, kind: type[Manifest], name: str) -> Manifest | None:
        """The object ``name`` of ``kind`` (in this namespace if namespaced), or None."""
        with _translated(f"cannot read {kind.__name__} {self.namespace}/{name}"):
            try:
                found: Manifest = self._client.get(kind, name)
            except ApiError as exc:
                if _not_found(exc):
                    return None
                raise
        return found

    def apply(self, obj: Manifest) -> str:
        """Create or update ``obj`` by server-side apply; returns what happened, kubectl-style."""
        name = str(obj.metadata.name) if obj.metadata else ""
        what = f"{obj.kind} {self.namespace}/{name}"
        before = self.find(type(obj), name)
        with _translated(f"cannot apply {what}"):
            try:
                after = self._client.apply(obj, force=True)
            except ApiError as exc:
                if _immutable(exc):
                    kind = (obj.kind or "").lower()
                    hint = f"delete it (kubectl delete {kind} {name}) and apply again"
                    raise KubernetesError(
                        f"cannot apply {what}: a field that cannot change was changed", hint=hint
                    ) from exc
                raise
        if before is None:
            return "created"
        return "unchanged" if _version(before) == _version(after) else "configured"


def _version(obj: Manifest) -> str | None:
    return obj.metadata.resourceVersion if obj.metadata else None
