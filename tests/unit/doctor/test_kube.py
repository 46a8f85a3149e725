"""``--kube`` against the controller's HTTP-level fake Kubernetes API (real lightkube client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.controller.cluster import Cluster
from sandpool.doctor.kube import PROBE_NAME, ClusterFactory, kube_checks
from sandpool.doctor.report import HOST, Status
from tests.unit.controller.fake_kube import RUNTIMECLASSES, FakeKubeAPI
from tests.unit.doctor.conftest import Loader

POOLS = """
worker:
  pools:
    gpu-fast: {runtime: nvidia, containerRuntime: runc, gpuType: T4}
    gpu-secure: {runtime: nvidia, containerRuntime: gvisor, gpuType: T4}
    isolated: {runtime: kata}
    elsewhere: {runtime: missing-too, mode: external}
    plain: {}
"""


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI().start()
    yield api
    api.stop()


def connect(api: FakeKubeAPI, tmp_path: Path) -> ClusterFactory:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    return lambda: Cluster.connect(kubeconfig=kubeconfig)


def test_missing_runtime_class_is_the_seeds_error_with_three_fixes(
    load_yaml: Loader, kube_api: FakeKubeAPI, tmp_path: Path
) -> None:
    kube_api.add_runtime_class("kata")
    pools = load_yaml(POOLS).resolved.pools.values()
    checks = kube_checks(pools, connect(kube_api, tmp_path))
    lines = [(c.pool, c.name, c.status) for c in checks]
    assert lines == [
        (HOST, "cluster", Status.OK),
        ("gpu-fast", "runtimeClass", Status.FAIL),
        ("gpu-secure", "runtimeClass", Status.FAIL),
        ("isolated", "runtimeClass", Status.OK),
    ]  # the external pool does not run on the cluster
    missing = checks[1]
    assert missing.message == 'RuntimeClass "nvidia" not found in the cluster'
    assert missing.fix is not None
    assert "1. install the NVIDIA GPU Operator" in missing.fix
    assert "2. remove `runtime: nvidia` from pool gpu-fast" in missing.fix
    assert "3. create the RuntimeClass" in missing.fix
    assert kube_api.writes() == []  # the doctor only reads


def test_every_runtime_class_present_is_ok(
    load_yaml: Loader, kube_api: FakeKubeAPI, tmp_path: Path
) -> None:
    for name in ("nvidia", "kata"):
        kube_api.add_runtime_class(name)
    checks = kube_checks(load_yaml(POOLS).resolved.pools.values(), connect(kube_api, tmp_path))
    assert all(c.status is Status.OK for c in checks)
    assert checks[0].message == "API server answers (namespace sandpool-test)"


def test_reachability_is_checked_even_when_no_pool_names_a_runtime(
    load_yaml: Loader, kube_api: FakeKubeAPI, tmp_path: Path
) -> None:
    pools = load_yaml("worker:\n  pools:\n    plain: {}\n").resolved.pools.values()
    (check,) = kube_checks(pools, connect(kube_api, tmp_path))
    assert check.status is Status.OK
    assert [r.path for r in kube_api.requests] == [f"{RUNTIMECLASSES}/{PROBE_NAME}"]


def test_unreachable_cluster_fails(load_yaml: Loader, tmp_path: Path) -> None:
    api = FakeKubeAPI().start()
    factory = connect(api, tmp_path)
    api.stop()  # nothing listens on its port any more
    (check,) = kube_checks(load_yaml(POOLS).resolved.pools.values(), factory)
    assert (check.pool, check.name, check.status) == (HOST, "cluster", Status.FAIL)
    assert check.message.startswith("not reachable:")
    assert check.fix is not None and "KUBECONFIG" in check.fix


def test_forbidden_runtime_classes_fail_with_rbac_advice(
    load_yaml: Loader, kube_api: FakeKubeAPI, tmp_path: Path
) -> None:
    kube_api.forbidden.add(f"{RUNTIMECLASSES}/nvidia")
    (check,) = kube_checks(load_yaml(POOLS).resolved.pools.values(), connect(kube_api, tmp_path))
    assert check.status is Status.FAIL
    assert "403" in check.message
    assert check.fix is not None and "RBAC" in check.fix
