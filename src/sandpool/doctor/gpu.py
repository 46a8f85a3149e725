"""GPU pools: NVIDIA devices and driver on this host, nvproxy for gVisor, the pod runtime.

The last is the seed's "Containers not getting GPU": a pool with ``gpuType`` and no ``runtime``.
"""

from __future__ import annotations

from pathlib import Path

from sandpool.config.resolved import ResolvedPool
from sandpool.controller.preflight import gpu_warnings
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, fail, ok, warn
from sandpool.errors import ContainerRuntimeError
from sandpool.runtime.probe import RunscInfo
from sandpool.runtime.runner import run_command

__all__ = ["gpu_checks", "nvidia_devices"]

_NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version", "--format=csv,noheader"]
_SEED_FIX = """\
add the pod runtime (the seed's "Containers not getting GPU"):
  worker:
    pools:
      {pool}:
        runtime: nvidia  # <- pod GPU access"""


def nvidia_devices(dev_dir: Path) -> list[str]:
    """The NVIDIA device nodes under ``dev_dir`` (``nvidia0``, ``nvidiactl``, …), sorted."""
    return sorted(p.name for p in dev_dir.glob("nvidia*") if not p.is_dir())


def _devices(pool: ResolvedPool, probes: HostProbes) -> Check:
    found = nvidia_devices(probes.dev_dir)
    if not any(name.removeprefix("nvidia").isdigit() for name in found):
        fix = (
            f"run pool {pool.name} on a host with an NVIDIA GPU and its driver loaded, "
            "or remove gpuType from the pool"
        )
        return fail(pool.name, "gpu", f"no NVIDIA GPU device ({probes.dev_dir}/nvidia0…)", fix)
    return ok(pool.name, "gpu", "devices: " + ", ".join(f"{probes.dev_dir}/{n}" for n in found))


def _driver(pool: ResolvedPool, probes: HostProbes) -> Check:
    try:
        out = run_command([probes.nvidia_smi, *_NVIDIA_SMI_QUERY], timeout=20).stdout
    except ContainerRuntimeError as exc:
        fix = "install the NVIDIA driver and its utilities (nvidia-smi) on this host"
        return fail(pool.name, "driver", f"{probes.nvidia_smi}: {exc}", fix)
    gpus = [line.strip() for line in out.splitlines() if line.strip()]
    if not gpus:
        return fail(pool.name, "driver", "nvidia-smi lists no GPU", "check `nvidia-smi` output")
    listed = "; ".join(gpus)
    if not any(pool.gpu_type.lower() in gpu.split(",")[0].lower() for gpu in gpus):
        fix = f"set gpuType to the GPU this host has, or run pool {pool.name} elsewhere"
        return warn(pool.name, "driver", f"gpuType {pool.gpu_type} but nvidia-smi: {listed}", fix)
    return ok(pool.name, "driver", f"nvidia-smi: {listed}")


def _nvproxy(pool: ResolvedPool, info: RunscInfo) -> Check:
    if info.has_nvproxy:
        return ok(pool.name, "nvproxy", f"runsc {info.version} offers --nvproxy")
    fix = (
        "install a runsc release with nvproxy (`runsc flags` lists it), "
        "or use containerRuntime: runc for this pool"
    )
    return fail(pool.name, "nvproxy", f"runsc {info.version} has no --nvproxy flag", fix)


def gpu_checks(pool: ResolvedPool, probes: HostProbes, info: RunscInfo | None) -> list[Check]:
    """For a pool with ``gpuType``: devices, driver, nvproxy (gVisor) and the pod runtime."""
    if not pool.gpu_type:
        return []
    checks = [_devices(pool, probes), _driver(pool, probes)]
    if pool.is_gvisor and info is not None:
        checks.append(_nvproxy(pool, info))
    for message in gpu_warnings([pool]):
        checks.append(warn(pool.name, "podRuntime", message, _SEED_FIX.format(pool=pool.name)))
    if pool.runtime:
        checks.append(ok(pool.name, "podRuntime", f"runtime: {pool.runtime}"))
    return checks
