"""GPU pools on a fake /dev with a stand-in nvidia-smi: devices, driver, nvproxy, pod runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.doctor.gpu import gpu_checks
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, Status
from sandpool.runtime.probe import RunscInfo
from tests.unit.doctor.conftest import Loader, stub

GPU_POOLS = """
worker:
  pools:
    gpu-fast: {gpuType: T4, runtime: nvidia, containerRuntime: runc}
    gpu-secure: {gpuType: T4, runtime: nvidia, containerRuntime: gvisor}
    gpu: {gpuType: T4, containerRuntime: gvisor}
    cpu: {containerRuntime: runc}
"""
BOOKWORM = RunscInfo("/usr/bin/runsc", "0.0~20221219.0", ("kvm", "ptrace"), frozenset({"root"}))
NVPROXY = RunscInfo("/opt/runsc", "release-20240101.0", ("systrap",), frozenset({"nvproxy"}))


@pytest.fixture
def gpu_host(probes: HostProbes) -> HostProbes:
    """/dev/nvidia0 and /dev/nvidiactl, and an nvidia-smi that lists a T4."""
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        (probes.dev_dir / name).write_text("")
    stub(Path(probes.nvidia_smi).parent, "nvidia-smi", 'echo "Tesla T4, 535.104.05"')
    return probes


def checks(
    load_yaml: Loader, pool: str, probes: HostProbes, info: RunscInfo | None
) -> dict[str, Check]:
    resolved = load_yaml(GPU_POOLS).resolved.pool(pool)
    return {check.name: check for check in gpu_checks(resolved, probes, info)}


def test_pools_without_gpu_type_get_no_gpu_checks(load_yaml: Loader, probes: HostProbes) -> None:
    assert checks(load_yaml, "cpu", probes, None) == {}


def test_gpu_host_with_runc_pool_is_ok(load_yaml: Loader, gpu_host: HostProbes) -> None:
    found = checks(load_yaml, "gpu-fast", gpu_host, None)
    assert [c.status for c in found.values()] == [Status.OK] * 3
    dev = gpu_host.dev_dir
    assert found["gpu"].message == f"devices: {dev}/nvidia-uvm, {dev}/nvidia0, {dev}/nvidiactl"
    assert found["driver"].message == "nvidia-smi: Tesla T4, 535.104.05"
    assert "nvproxy" not in found  # runc passes devices through directly


def test_host_without_gpu_fails_devices_and_driver(load_yaml: Loader, probes: HostProbes) -> None:
    found = checks(load_yaml, "gpu-fast", probes, None)
    assert found["gpu"].status is Status.FAIL
    assert found["gpu"].fix is not None and "remove gpuType" in found["gpu"].fix
    assert found["driver"].status is Status.FAIL
    assert "not found" in found["driver"].message


def test_control_device_alone_is_not_a_gpu(load_yaml: Loader, probes: HostProbes) -> None:
    (probes.dev_dir / "nvidiactl").write_text("")
    assert checks(load_yaml, "gpu-fast", probes, None)["gpu"].status is Status.FAIL


def test_gvisor_gpu_pool_needs_nvproxy(load_yaml: Loader, gpu_host: HostProbes) -> None:
    missing = checks(load_yaml, "gpu-secure", gpu_host, BOOKWORM)["nvproxy"]
    assert missing.status is Status.FAIL
    assert missing.message == "runsc 0.0~20221219.0 has no --nvproxy flag"
    offered = checks(load_yaml, "gpu-secure", gpu_host, NVPROXY)["nvproxy"]
    assert offered.status is Status.OK


def test_gpu_type_without_pod_runtime_warns_with_the_seeds_fix(
    load_yaml: Loader, gpu_host: HostProbes
) -> None:
    pod = checks(load_yaml, "gpu", gpu_host, NVPROXY)["podRuntime"]
    assert pod.status is Status.WARN
    assert "will not get the GPU" in pod.message
    assert pod.fix is not None
    assert "Containers not getting GPU" in pod.fix
    assert "      gpu:\n        runtime: nvidia" in pod.fix


def test_another_gpu_than_gpu_type_warns(load_yaml: Loader, gpu_host: HostProbes) -> None:
    stub(Path(gpu_host.nvidia_smi).parent, "nvidia-smi", 'echo "NVIDIA A100-SXM4-40GB, 550.1"')
    driver = checks(load_yaml, "gpu-fast", gpu_host, None)["driver"]
    assert driver.status is Status.WARN
    assert "gpuType T4" in driver.message
