"""The only module that talks to the Kubernetes API server (through lightkube).

Configuration, in lightkube's order: in-cluster service account, then ``$KUBECONFIG``, then
``~/.kube/config``; ``kubeconfig=`` names a file explicitly. Every foreign exception is
translated here: no cluster configuration or no answer -> ClusterUnreachable, any other API
failure -> KubernetesError naming the object and the server's message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.resources.batch_v1 import Job
from lightkube.resources.node_v1 import RuntimeClass
from lightkube.types import CascadeType

from sandpool.errors import ClusterUnreachable, KubernetesError

__all__ = ["FIELD_MANAGER", "Cluster"]

FIELD_MANAGER = "sandpool"
_DELETE_WAIT_S = 30.0


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
    """A 422 for an immutable field (a Job's pod template), not for an invalid object."""
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
        """The namespace Jobs go to."""
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

    def find_job(self, name: str) -> Job | None:
        """The Job ``name`` in this namespace, or None."""
        with _translated(f"cannot read Job {self.namespace}/{name}"):
            try:
                return self._client.get(Job, name)
            except ApiError as exc:
                if _not_found(exc):
                    return None
                raise

    def apply_job(self, job: Job) -> str:
        """Create or update ``job`` by server-side apply; returns what happened, kubectl-style."""
        name = str(job.metadata.name) if job.metadata else ""
        before = self.find_job(name)
        with _translated(f"cannot apply Job {self.namespace}/{name}"):
            try:
                after = self._client.apply(job, force=True)
            except ApiError as exc:
                if before is None or not _immutable(exc):
                    raise
                # A Job's pod template is immutable: a changed one needs a new Job.
                self._recreate(job, name)
                return "recreated (pod template changed; old worker pods are terminated)"
        if before is None:
            return "created"
        return "unchanged" if _version(before) == _version(after) else "configured"

    def _recreate(self, job: Job, name: str) -> None:
        self._client.delete(Job, name, cascade=CascadeType.BACKGROUND)
        deadline = time.monotonic() + _DELETE_WAIT_S
        while self.find_job(name) is not None:
            if time.monotonic() > deadline:
                raise KubernetesError(f"Job {self.namespace}/{name} was not deleted in time")
            time.sleep(0.2)
        self._client.create(job)


def _version(job: Job) -> str | None:
    return job.metadata.resourceVersion if job.metadata else None
