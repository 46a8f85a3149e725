"""What must hold before any object is created: the pools' RuntimeClasses exist; GPU pools warned.

Pure: the cluster is asked through a callable, so the same rules run against a fake or a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sandpool.config.resolved import ResolvedPool
from sandpool.controller.runtimeclasses import pod_runtimes
from sandpool.errors import RuntimeClassNotFound

__all__ = ["check_runtime_classes", "gpu_warnings", "missing_runtime_class_message"]

# Who installs a well-known RuntimeClass; the seed's first fix, made specific.
_PROVIDERS = {
    "nvidia": "the NVIDIA GPU Operator",
    "kata": "Kata Containers (kata-deploy)",
    "gvisor": "gVisor's containerd shim (runsc)",
}


def missing_runtime_class_message(name: str, pools: list[str]) -> str:
    """The seed's ``RuntimeClass "nvidia" not found`` and its three fixes."""
    provider = _PROVIDERS.get(name, f'the software that provides the "{name}" handler')
    listed = ", ".join(pools)
    return "\n".join(
        [
            f'RuntimeClass "{name}" not found (pool {listed} sets `runtime: {name}`); '
            "nothing was created. Fix one of:",
            f'  1. install {provider}, which creates the "{name}" RuntimeClass',
            f"  2. remove `runtime: {name}` from pool {listed} if its pods need no special runtime",
            f'  3. create the RuntimeClass (handler "{name}" must exist on the nodes): '
            "`sandpool k8s render --runtimeclasses` prints it",
        ]
    )


def check_runtime_classes(pools: Iterable[ResolvedPool], exists: Callable[[str], bool]) -> None:
    """Raise RuntimeClassNotFound naming every RuntimeClass the pools need and the cluster lacks."""
    missing = [
        missing_runtime_class_message(name, users)
        for name, users in pod_runtimes(pools).items()
        if not exists(name)
    ]
    if missing:
        raise RuntimeClassNotFound("\n\n".join(missing))


def gpu_warnings(pools: Iterable[ResolvedPool]) -> list[str]:
    """The seed's "containers not getting GPU": a GPU pool with no pod runtime."""
    return [
        f"pool '{pool.name}' has gpuType {pool.gpu_type} but no `runtime`: unless the NVIDIA "
        "runtime is the nodes' default, its containers will not get the GPU; "
        "add `runtime: nvidia` to the pool"
        for pool in pools
        if pool.gpu_type and not pool.runtime
    ]
