"""``k8s apply`` against the HTTP-level fake API (fake_kube.py): contract tests.

No real cluster is reachable here. These drive the real lightkube client over real HTTP to a
local fake that implements the few routes sandpool uses; tests/integration/test_k8s_cluster.py
runs the same flow against a real cluster (kind, k3d) when SANDPOOL_K8S_TESTS=1.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandpool.controller.apply import apply_deployment
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
EVERYTHING = [
    ("secret", "sandpool-secrets"),
    ("configmap", "sandpool-config"),
    ("deployment.apps", "sandpool-redis"),
    ("service", "sandpool-redis"),
    ("networkpolicy.networking.k8s.io", "sandpool-redis-from-gateway"),
    ("statefulset.apps", "sandpool-postgres"),
    ("service", "sandpool-postgres"),
    ("networkpolicy.networking.k8s.io", "sandpool-postgres-from-gateway"),
    ("deployment.apps", "sandpool-gateway"),
    ("service", "sandpool-gateway"),
    ("deployment.apps", "sandpool-worker-secure"),
    ("deployment.apps", "sandpool-worker-gpu"),
]


@pytest.fixture
def cluster(kube_api: FakeKubeAPI, tmp_path: Path) -> Iterator[Cluster]:
    connected = Cluster.connect(kubeconfig=kube_api.write_kubeconfig(tmp_path / "kubeconfig"))
    yield connected
    connected.close()


def actions(loaded_text: str, load_yaml: Loader, cluster: Cluster, **kw: Any) -> list[str]:
    return [a.action for a in apply_deployment(load_yaml(loaded_text), cluster, **kw)]


def secret(kube_api: FakeKubeAPI) -> dict[str, str]:
    stored = kube_api.get("Secret", "sandpool-secrets")
    assert stored is not None
    return {k: base64.b64decode(v).decode() for k, v in stored["data"].items()}


def test_creates_every_object_by_server_side_apply(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    applied = apply_deployment(load_yaml(POOLS), cluster)
    assert [(a.kind, a.name) for a in applied] == EVERYTHING
    assert {a.action for a in applied} == {"created"}
    patches = [r for r in kube_api.writes() if r.method == "PATCH"]
    assert [r.path.rsplit("/", 1)[1] for r in patches] == [name for _, name in EVERYTHING]
    for request in patches:
        assert request.content_type.startswith("application/apply-patch")
        assert request.query["fieldManager"] == ["sandpool"]
        assert request.query["force"] == ["true"]
        assert "/namespaces/sandpool-test/" in request.path  # the kubeconfig's namespace
    stored = kube_api.get("Deployment", "sandpool-worker-gpu")
    assert stored is not None
    assert stored["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert secret(kube_api)["worker-token"].startswith("sp_worker_")


def test_reapplying_is_unchanged_keeps_the_keys_and_repairs_drift(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    actions(POOLS, load_yaml, cluster)
    first = secret(kube_api)
    assert set(actions(POOLS, load_yaml, cluster)) == {"unchanged"}
    assert secret(kube_api) == first  # a new PostgreSQL password would lock the gateway out
    drifted = kube_api.get("Deployment", "sandpool-worker-secure")
    assert drifted is not None
    drifted["metadata"]["labels"]["sandpool.dev/pool"] = "edited-by-hand"
    result = dict(zip([n for _, n in EVERYTHING], actions(POOLS, load_yaml, cluster), strict=True))
    assert result["sandpool-worker-secure"] == "configured"
    assert result["sandpool-worker-gpu"] == "unchanged"
    repaired = kube_api.get("Deployment", "sandpool-worker-secure")
    assert repaired is not None
    assert repaired["metadata"]["labels"]["sandpool.dev/pool"] == "secure"


def test_a_changed_pod_template_rolls_the_workers_in_place(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    actions(POOLS, load_yaml, cluster)
    kube_api.requests.clear()
    bigger = POOLS.replace(
        "{containerRuntime: gvisor}", "{containerRuntime: gvisor, tmpSizeLimit: 99Gi}"
    )
    result = dict(zip([n for _, n in EVERYTHING], actions(bigger, load_yaml, cluster), strict=True))
    assert result["sandpool-worker-secure"] == "configured"
    assert result["sandpool-config"] == "configured"
    assert not [r for r in kube_api.writes() if r.method in ("DELETE", "POST")]
    stored = kube_api.get("Deployment", "sandpool-worker-secure")
    assert stored is not None
    volumes = stored["spec"]["template"]["spec"]["volumes"]
    assert {"name": "sandpool-tmp", "emptyDir": {"sizeLimit": "99Gi"}} in volumes


def test_an_immutable_field_is_a_clear_error(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    actions(POOLS, load_yaml, cluster)
    bigger = "kubernetes:\n  postgres: {storage: 20Gi}\n" + POOLS
    with pytest.raises(
        KubernetesError, match="StatefulSet sandpool-test/sandpool-postgres"
    ) as info:
        apply_deployment(load_yaml(bigger), cluster)
    assert "kubectl delete statefulset sandpool-postgres" in str(info.value)


def test_external_stores_are_only_urls_in_the_secret(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    text = (
        "kubernetes:\n  redis: {url: 'redis://r.example:6379/0'}\n"
        "  postgres: {url: 'postgresql+psycopg://u:p@db.example/sp'}\n"
        "worker:\n  pools:\n    p: {}\n"
    )
    applied = apply_deployment(load_yaml(text), cluster)
    assert not [a for a in applied if "redis" in a.name or "postgres" in a.name]
    values = secret(kube_api)
    assert values["redis-url"] == "redis://r.example:6379/0"
    assert values["database-url"] == "postgresql+psycopg://u:p@db.example/sp"
    assert "postgres-password" not in values


def test_one_pool_applies_only_its_workers(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.add_runtime_class("nvidia")
    applied = apply_deployment(load_yaml(POOLS), cluster, only="gpu")
    assert [(a.kind, a.name, a.action) for a in applied] == [
        ("deployment.apps", "sandpool-worker-gpu", "created")
    ]
    assert kube_api.get("Secret", "sandpool-secrets") is None


def test_missing_runtime_class_creates_nothing(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    with pytest.raises(RuntimeClassNotFound, match=r'^RuntimeClass "nvidia" not found'):
        apply_deployment(load_yaml(POOLS), cluster)
    assert kube_api.writes() == []
    assert [r.path for r in kube_api.requests] == [f"{RUNTIMECLASSES}/nvidia"]
    assert kube_api.get("Deployment", "sandpool-worker-secure") is None


def test_dry_run_sends_no_write(kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader) -> None:
    kube_api.add_runtime_class("nvidia")
    apply_deployment(load_yaml(POOLS), cluster, only="gpu")
    kube_api.requests.clear()
    result = actions(POOLS, load_yaml, cluster, dry_run=True)
    dry = dict(zip([n for _, n in EVERYTHING], result, strict=True))
    assert dry["sandpool-worker-secure"] == "would be created (dry run)"
    assert dry["sandpool-worker-gpu"] == "would be updated (dry run)"
    assert kube_api.requests  # it did look
    assert kube_api.writes() == []
    assert kube_api.get("Deployment", "sandpool-worker-secure") is None


def test_gpu_pool_without_runtime_is_warned_before_anything(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    warnings: list[str] = []
    apply_deployment(
        load_yaml("worker:\n  pools:\n    g: {gpuType: T4}\n"), cluster, warn=warnings.append
    )
    assert len(warnings) == 1
    assert "runtime: nvidia" in warnings[0]


def test_forbidden_is_a_kubernetes_error(
    kube_api: FakeKubeAPI, cluster: Cluster, load_yaml: Loader
) -> None:
    kube_api.forbidden.add(f"{RUNTIMECLASSES}/nvidia")
    with pytest.raises(KubernetesError, match='cannot read RuntimeClass "nvidia": 403 Forbidden'):
        apply_deployment(load_yaml(POOLS), cluster)
    assert kube_api.writes() == []


def test_no_answer_is_cluster_unreachable(tmp_path: Path, load_yaml: Loader) -> None:
    api = FakeKubeAPI().start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.stop()  # nothing listens on its port any more
    down = Cluster.connect(kubeconfig=kubeconfig)
    with pytest.raises(ClusterUnreachable):
        apply_deployment(load_yaml(POOLS), down)


def test_missing_kubeconfig_is_cluster_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachable, match="not found"):
        Cluster.connect(kubeconfig=str(tmp_path / "nope"))
