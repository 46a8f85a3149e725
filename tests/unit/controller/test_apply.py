"""``k8s apply`` against the HTTP-level fake API (fake_kube.py): contract tests.

No real cluster is reachable here. These drive the real lightkube client over real HTTP to a
local fake that implements the few routes sandpool uses; tests/integration/test_k8s_cluster.py
runs the same flow against a real cluster (kind, k3d) when SANDPOOL_K8S_TESTS=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.controller.apply import apply_pools
from sandpool.controller.cluster import Cluster
from sandpool.errors import ClusterUnreachable, KubernetesError, RuntimeClassNotFound
from tests.unit.controller.conftest import Loader
from tests.unit.controller.fake_kube import RUNTIMECLASSES, FakeKubeAPI

POOLS = """
worker:
  pools:
    secure: {containerRuntime: gvisor}
    gpu: {gpuType: T4, runtime: nvidia, containerRuntime: runc}
"""
JOBS = ["sandpool-worker-secure", "sandpool-worker-gpu"]


@pytest.fixture
def cluster(kube_api: FakeKubeAPI, tmp_path: Path) -> Iterator[Cluster]:
    connected = Cluster.connect(kubeconfig=kube_api.write_kubeconfig(tmp_path / "kubeconfig"))
    yield connected
    connected.close()


def actions(loaded_text: str, load_yaml: Loader, cluster: Cluster, **kw: bool) -> list[str]:
    return [a.action for a in apply_pools(load_yaml(loaded_text), cluster, **kw)]


def test_creates_every_job_by_server_side_apply(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    assert actions(POOLS, load_yaml, cluster) == ["created", "created"]
    patches = [r for r in kube_api.writes() if r.method == "PATCH"]
    assert [r.path.rsplit("/", 1)[1] for r in patches] == JOBS
    for request in patches:
        assert request.content_type.startswith("application/apply-patch")
        assert request.query["fieldManager"] == ["sandpool"]
        assert request.query["force"] == ["true"]
        assert "/namespaces/sandpool-test/" in request.path  # the kubeconfig's namespace
    stored = kube_api.job("sandpool-worker-gpu")
    assert stored is not None
    assert stored["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_reapplying_is_unchanged_and_drift_is_repaired(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    actions(POOLS, load_yaml, cluster)
    assert actions(POOLS, load_yaml, cluster) == ["unchanged", "unchanged"]
    drifted = kube_api.job("sandpool-worker-secure")
    assert drifted is not None
    drifted["metadata"]["labels"]["sandpool.dev/pool"] = "edited-by-hand"
    assert actions(POOLS, load_yaml, cluster) == ["configured", "unchanged"]
    repaired = kube_api.job("sandpool-worker-secure")
    assert repaired is not None
    assert repaired["metadata"]["labels"]["sandpool.dev/pool"] == "secure"


def test_a_changed_pod_template_recreates_the_job(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    actions(POOLS, load_yaml, cluster)
    kube_api.requests.clear()
    bigger = POOLS.replace(
        "{containerRuntime: gvisor}", "{containerRuntime: gvisor, tmpSizeLimit: 99Gi}"
    )
    result = actions(bigger, load_yaml, cluster)
    assert result[0].startswith("recreated")
    assert result[1] == "unchanged"
    writes = [(r.method, r.path.rsplit("/", 1)[1]) for r in kube_api.writes()]
    assert ("DELETE", "sandpool-worker-secure") in writes
    assert ("POST", "jobs") in writes
    stored = kube_api.job("sandpool-worker-secure")
    assert stored is not None
    volumes = stored["spec"]["template"]["spec"]["volumes"]
    assert {"name": "sandpool-tmp", "emptyDir": {"sizeLimit": "99Gi"}} in volumes


def test_missing_runtime_class_creates_nothing(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    with pytest.raises(RuntimeClassNotFound, match=r'^RuntimeClass "nvidia" not found'):
        apply_pools(load_yaml(POOLS), cluster)
    assert kube_api.writes() == []
    assert [r.path for r in kube_api.requests] == [f"{RUNTIMECLASSES}/nvidia"]
    assert kube_api.job("sandpool-worker-secure") is None


def test_dry_run_sends_no_write(kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader) -> None:
    kube_api.add_runtime_class("nvidia")
    apply_pools(load_yaml(POOLS), cluster, only="gpu")
    kube_api.requests.clear()
    result = actions(POOLS, load_yaml, cluster, dry_run=True)
    assert result == ["would be created (dry run)", "would be updated (dry run)"]
    assert kube_api.requests  # it did look
    assert kube_api.writes() == []
    assert kube_api.job("sandpool-worker-secure") is None


def test_gpu_pool_without_runtime_is_warned_before_anything(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    warnings: list[str] = []
    apply_pools(
        load_yaml("worker:\n  pools:\n    g: {gpuType: T4}\n"), cluster, warn=warnings.append
    )
    assert len(warnings) == 1
    assert "runtime: nvidia" in warnings[0]


def test_forbidden_is_a_kubernetes_error(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.forbidden.add(f"{RUNTIMECLASSES}/nvidia")
    with pytest.raises(KubernetesError, match='cannot read RuntimeClass "nvidia": 403 Forbidden'):
        apply_pools(load_yaml(POOLS), cluster)
    assert kube_api.writes() == []


def test_no_answer_is_cluster_unreachable(tmp_path: Path, load_yaml: Loader) -> None:
    api = FakeKubeAPI().start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.stop()  # nothing listens on its port any more
    down = Cluster.connect(kubeconfig=kubeconfig)
    with pytest.raises(ClusterUnreachable):
        apply_pools(load_yaml(POOLS), down)


def test_missing_kubeconfig_is_cluster_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachable, match="not found"):
        Cluster.connect(kubeconfig=str(tmp_path / "nope"))
