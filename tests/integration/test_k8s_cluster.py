"""``k8s apply`` against a real cluster: the unit tests' contract, checked for real.

Off by default (no cluster exists where the unit tests run). To run it against kind or k3d:

    kind create cluster   # or: k3d cluster create
    SANDPOOL_K8S_TESTS=1 .venv/bin/pytest tests/integration/test_k8s_cluster.py -v

It uses the current kubeconfig context, works in a throw-away namespace it deletes afterwards,
and needs no worker image: it checks the objects the API server stores (and its validation,
immutable fields included), not running pods.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

from sandpool.config import LoadedConfig
from sandpool.controller.apply import apply_deployment
from sandpool.controller.cluster import Cluster
from sandpool.errors import ClusterUnreachable, RuntimeClassNotFound

pytestmark = pytest.mark.skipif(
    os.environ.get("SANDPOOL_K8S_TESTS") != "1",
    reason="set SANDPOOL_K8S_TESTS=1 with a reachable kubeconfig (kind, k3d) to run",
)

POOLS = """
worker:
  pools:
    secure: {containerRuntime: gvisor}
    fast: {containerRuntime: runc, tmpSizeLimit: 1Gi}
"""


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh namespace, deleted with everything in it afterwards."""
    from lightkube import Client
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    name = f"sandpool-it-{uuid.uuid4().hex[:8]}"
    try:
        client = Client()
        client.create(Namespace(metadata=ObjectMeta(name=name)))
    except Exception as exc:  # no kubeconfig, no answer: this machine has no cluster
        pytest.skip(f"no reachable cluster: {exc}")
    yield name
    client.delete(Namespace, name)
    client.close()


@pytest.fixture
def cluster(namespace: str) -> Iterator[Cluster]:
    try:
        connected = Cluster.connect(namespace=namespace)
    except ClusterUnreachable as exc:
        pytest.skip(str(exc))
    yield connected
    connected.close()


def load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    return LoadedConfig.load([str(path)], {})


def test_missing_runtime_class_creates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    missing = f"sandpool-absent-{uuid.uuid4().hex[:6]}"
    loaded = load(tmp_path, f"worker:\n  pools:\n    p: {{runtime: {missing}}}\n")
    with pytest.raises(RuntimeClassNotFound, match=f'RuntimeClass "{missing}" not found'):
        apply_deployment(loaded, cluster)
    assert cluster.find(Deployment, "sandpool-worker-p") is None
    assert cluster.find(Secret, "sandpool-secrets") is None


def test_dry_run_create_reapply_and_roll(cluster: Cluster, tmp_path: Path) -> None:
    loaded = load(tmp_path, POOLS)
    dry = apply_deployment(loaded, cluster, dry_run=True)
    assert {a.action for a in dry} == {"would be created (dry run)"}
    assert cluster.find(Deployment, "sandpool-worker-secure") is None
    assert {a.action for a in apply_deployment(loaded, cluster)} == {"created"}
    worker = cluster.find(Deployment, "sandpool-worker-secure")
    assert isinstance(worker, Deployment) and worker.metadata and worker.metadata.labels
    assert worker.metadata.labels["sandpool.dev/container-runtime"] == "gvisor"
    assert {a.action for a in apply_deployment(loaded, cluster)} == {"unchanged"}
    changed = load(tmp_path, POOLS.replace("tmpSizeLimit: 1Gi", "tmpSizeLimit: 2Gi"))
    actions = {a.name: a.action for a in apply_deployment(changed, cluster)}
    assert actions["sandpool-worker-secure"] == "unchanged"
    assert actions["sandpool-worker-fast"] == "configured"
    assert actions["sandpool-secrets"] == "unchanged"  # its keys are kept
