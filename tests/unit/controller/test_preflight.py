"""RuntimeClasses: those rendered, and the preflight that requires them (seed troubleshooting)."""

from __future__ import annotations

import pytest

from sandpool.controller.manifests import local_pools, render_manifests
from sandpool.controller.preflight import check_runtime_classes, gpu_warnings
from sandpool.controller.runtimeclasses import pod_runtimes
from sandpool.errors import RuntimeClassNotFound
from tests.unit.controller.conftest import Loader

MIXED = """
worker:
  pools:
    performance: {containerRuntime: runc}
    gpu-fast: {runtime: nvidia, containerRuntime: runc, gpuType: T4}
    gpu-secure: {runtime: nvidia, containerRuntime: gvisor, gpuType: T4}
    isolated: {runtime: kata}
    no-runtime-gpu: {gpuType: A10G}
"""


def test_runtimeclasses_one_per_named_pod_runtime(load_yaml: Loader) -> None:
    objects = render_manifests(load_yaml(MIXED), runtime_classes=True)
    classes = [o.to_dict() for o in objects if o.kind == "RuntimeClass"]
    assert [(c["metadata"]["name"], c["handler"]) for c in classes] == [
        ("kata", "kata"),
        ("nvidia", "nvidia"),
    ]
    assert classes[1]["metadata"]["annotations"]["sandpool.dev/pools"] == "gpu-fast,gpu-secure"
    assert "RuntimeClass" not in [o.kind for o in objects[2:]]  # RuntimeClasses come first
    assert [o.kind for o in objects[-5:]] == ["Deployment"] * 5  # the workers come last


def test_no_runtimeclasses_unless_asked(load_yaml: Loader) -> None:
    assert "RuntimeClass" not in {o.kind for o in render_manifests(load_yaml(MIXED))}


def test_missing_runtime_class_message_is_the_seeds(load_yaml: Loader) -> None:
    pools = local_pools(load_yaml(MIXED))
    asked: list[str] = []

    def exists(name: str) -> bool:
        asked.append(name)
        return name == "kata"

    with pytest.raises(RuntimeClassNotFound) as info:
        check_runtime_classes(pools, exists)
    message = str(info.value)
    assert message.startswith('RuntimeClass "nvidia" not found')
    assert "install the NVIDIA GPU Operator" in message
    assert "remove `runtime: nvidia` from pool gpu-fast, gpu-secure" in message
    assert "sandpool k8s render --runtimeclasses" in message
    assert "kata" not in message  # RuntimeClasses that exist are not reported
    assert sorted(asked) == ["kata", "nvidia"]


def test_all_present_passes(load_yaml: Loader) -> None:
    check_runtime_classes(local_pools(load_yaml(MIXED)), lambda _: True)


def test_gpu_pool_without_pod_runtime_is_warned(load_yaml: Loader) -> None:
    (warning,) = gpu_warnings(local_pools(load_yaml(MIXED)))
    assert "no-runtime-gpu" in warning
    assert "runtime: nvidia" in warning
    assert "not get the GPU" in warning


def test_pod_runtimes_maps_names_to_pools(load_yaml: Loader) -> None:
    runtimes = pod_runtimes(local_pools(load_yaml(MIXED)))
    assert runtimes == {"kata": ["isolated"], "nvidia": ["gpu-fast", "gpu-secure"]}
