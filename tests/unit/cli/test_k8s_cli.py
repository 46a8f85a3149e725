"""``sandpool k8s render|apply`` through click's runner; apply talks to the fake API over HTTP.

No real cluster is reachable in unit tests (see tests/unit/controller/fake_kube.py); the
same flow against kind/k3d is tests/integration/test_k8s_cluster.py.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from sandpool.cli.main import cli
from tests.unit.controller.fake_kube import FakeKubeAPI

GPU_POOLS = """
worker:
  pools:
    gpu-runc: {mode: local, gpuType: T4, runtime: nvidia, containerRuntime: runc}
    cpu: {mode: local, containerRuntime: gvisor}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SANDPOOL_") or n == "KUBECONFIG"]:
        monkeypatch.delenv(name)


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI().start()
    yield api
    api.stop()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(io.StringIO(text)) if d]


def config_file(tmp_path: Path, text: str = GPU_POOLS) -> str:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    return str(path)


def test_render_default_config_prints_the_whole_deployment() -> None:
    result = run("k8s", "render")
    assert result.exit_code == 0, result.output
    docs = documents(result.stdout)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Secret", "sandpool-secrets"),
        ("ConfigMap", "sandpool-config"),
        ("Deployment", "sandpool-redis"),
        ("Service", "sandpool-redis"),
        ("NetworkPolicy", "sandpool-redis-from-gateway"),
        ("StatefulSet", "sandpool-postgres"),
        ("Service", "sandpool-postgres"),
        ("NetworkPolicy", "sandpool-postgres-from-gateway"),
        ("Deployment", "sandpool-gateway"),
        ("Service", "sandpool-gateway"),
        ("Deployment", "sandpool-worker-default"),
        ("Deployment", "sandpool-worker-performance"),
    ]
    assert all("runtimeClassName" not in d["spec"]["template"]["spec"] for d in docs[-2:])
    assert "re-applying a new render replaces them" in result.stderr


def test_render_no_secret_leaves_it_out_and_renders_twice_the_same() -> None:
    first = run("k8s", "render", "--no-secret")
    assert first.exit_code == 0, first.output
    assert documents(first.stdout)[0]["kind"] == "ConfigMap"
    assert first.stderr == ""
    assert run("k8s", "render", "--no-secret").stdout == first.stdout


def test_render_runtimeclasses_and_one_pool(tmp_path: Path) -> None:
    result = run(
        "k8s", "render", "-c", config_file(tmp_path), "--pool", "gpu-runc", "--runtimeclasses"
    )
    assert result.exit_code == 0, result.output
    kinds = [(d["kind"], d["metadata"]["name"]) for d in documents(result.stdout)]
    assert kinds == [("RuntimeClass", "nvidia"), ("Deployment", "sandpool-worker-gpu-runc")]


def test_render_unknown_pool_fails_cleanly(tmp_path: Path) -> None:
    result = run("k8s", "render", "-c", config_file(tmp_path), "--pool", "gpu-rnc")
    assert result.exit_code == 2
    assert result.stderr.startswith("UnknownPool: unknown pool 'gpu-rnc'")
    assert "did you mean 'gpu-runc'" in result.stderr
    assert "Traceback" not in result.output


def test_render_warns_for_gpu_pool_without_runtime(tmp_path: Path) -> None:
    result = run(
        "k8s", "render", "-c", config_file(tmp_path, "worker:\n  pools:\n    g: {gpuType: T4}\n")
    )
    assert result.exit_code == 0
    assert "warning: pool 'g' has gpuType T4 but no `runtime`" in result.stderr
    assert documents(result.stdout)[-1]["kind"] == "Deployment"


def test_apply_missing_runtime_class_prints_the_seed_error(
    tmp_path: Path, kube_api: FakeKubeAPI
) -> None:
    env = {"KUBECONFIG": kube_api.write_kubeconfig(tmp_path / "kubeconfig")}
    result = run("k8s", "apply", "-c", config_file(tmp_path), env=env)
    assert result.exit_code != 0
    assert result.stderr.startswith('RuntimeClassNotFound: RuntimeClass "nvidia" not found')
    for fix in ("NVIDIA GPU Operator", "remove `runtime: nvidia`", "k8s render --runtimeclasses"):
        assert fix in result.stderr
    assert "Traceback" not in result.output
    assert kube_api.writes() == []


def test_apply_creates_then_dry_run_reports(tmp_path: Path, kube_api: FakeKubeAPI) -> None:
    kube_api.add_runtime_class("nvidia")
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    args = ["k8s", "apply", "-c", config_file(tmp_path), "--kubeconfig", kubeconfig, "-n", "pools"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "secret/sandpool-secrets created (namespace pools)"
    assert lines[-2:] == [
        "deployment.apps/sandpool-worker-gpu-runc created (namespace pools)",
        "deployment.apps/sandpool-worker-cpu created (namespace pools)",
    ]
    assert kube_api.get("Deployment", "sandpool-worker-cpu", namespace="pools") is not None
    assert "sp_" not in result.output  # no key is ever printed
    writes = len(kube_api.writes())
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would be updated (dry run)" in dry.stdout
    assert len(kube_api.writes()) == writes


def test_apply_without_any_cluster_config(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)}
    result = run("k8s", "apply", env=env)
    assert result.exit_code != 0
    assert result.stderr.startswith("ClusterUnreachable: cannot load the Kubernetes configuration")
    assert "Traceback" not in result.output
