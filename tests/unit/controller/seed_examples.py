"""The YAML examples of the seed document (runtime-configuration-explained.md), inline.

Each entry: example title -> (YAML text, {pool: what the seed says about that pool's pod}).
Expected values are written from the seed's prose ("Pod: Runs with NVIDIA Container Runtime",
"User containers: Run in gVisor sandbox"), not computed from the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodExpectation:
    """What the seed says about a pool's worker pod."""

    runtime_class: str | None  # pod.spec.runtimeClassName, None = key absent
    container_runtime: str  # the OCI runtime the worker uses
    gpu: bool  # gpuType set -> nvidia.com/gpu requested


RUNC = PodExpectation(None, "runc", gpu=False)
GVISOR = PodExpectation(None, "gvisor", gpu=False)

SEED_EXAMPLES: dict[str, tuple[str, dict[str, PodExpectation]]] = {
    "configuration-structure": (
        """
worker:
  pools:
    my-pool:
      runtime: nvidia
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
        gvisorRoot: /run/gvisor
""",
        {"my-pool": PodExpectation("nvidia", "gvisor", gpu=False)},
    ),
    "standard-cpu-pool-runc": (
        """
worker:
  pools:
    default:
      mode: local
      containerRuntime: runc
      containerRuntimeConfig:
        gvisorPlatform: systrap  # Ignored for runc
        gvisorRoot: /run/gvisor   # Ignored for runc
""",
        {"default": RUNC},
    ),
    "secure-cpu-pool-gvisor": (
        """
worker:
  pools:
    secure:
      mode: local
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
        gvisorRoot: /run/gvisor
""",
        {"secure": GVISOR},
    ),
    "gpu-pool-nvidia-runc": (
        """
worker:
  pools:
    gpu-runc:
      mode: local
      gpuType: T4
      runtime: nvidia
      containerRuntime: runc
      containerRuntimeConfig:
        gvisorPlatform: systrap
        gvisorRoot: /run/gvisor
""",
        {"gpu-runc": PodExpectation("nvidia", "runc", gpu=True)},
    ),
    "gpu-pool-nvidia-gvisor": (
        """
worker:
  pools:
    gpu-gvisor:
      mode: local
      gpuType: T4
      runtime: nvidia
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
        gvisorRoot: /run/gvisor
""",
        {"gpu-gvisor": PodExpectation("nvidia", "gvisor", gpu=True)},
    ),
    "example1-multi-tenant": (
        """
worker:
  pools:
    public:
      mode: local
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
""",
        {"public": GVISOR},
    ),
    "example2-gpu-training": (
        """
worker:
  pools:
    gpu-training:
      mode: local
      gpuType: A100
      runtime: nvidia
      containerRuntime: runc
""",
        {"gpu-training": PodExpectation("nvidia", "runc", gpu=True)},
    ),
    "example3-secure-gpu-inference": (
        """
worker:
  pools:
    gpu-inference:
      mode: local
      gpuType: T4
      runtime: nvidia
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
""",
        {"gpu-inference": PodExpectation("nvidia", "gvisor", gpu=True)},
    ),
    "example4-mixed-environment": (
        """
worker:
  pools:
    performance:
      containerRuntime: runc
    sandbox:
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
    gpu-fast:
      runtime: nvidia
      containerRuntime: runc
    gpu-secure:
      runtime: nvidia
      containerRuntime: gvisor
      containerRuntimeConfig:
        gvisorPlatform: systrap
""",
        {
            "performance": RUNC,
            "sandbox": GVISOR,
            "gpu-fast": PodExpectation("nvidia", "runc", gpu=False),
            "gpu-secure": PodExpectation("nvidia", "gvisor", gpu=False),
        },
    ),
    "troubleshooting-gpu": (
        """
worker:
  pools:
    gpu:
      runtime: nvidia
      containerRuntime: gvisor
""",
        {"gpu": PodExpectation("nvidia", "gvisor", gpu=False)},
    ),
    "faq-independent-pools": (
        """
worker:
  pools:
    pool-a:
      runtime: nvidia
      containerRuntime: runc
    pool-b:
      containerRuntime: gvisor
""",
        {"pool-a": PodExpectation("nvidia", "runc", gpu=False), "pool-b": GVISOR},
    ),
}

SEED_POOLS = [
    (example, pool, expected)
    for example, (_, pools) in SEED_EXAMPLES.items()
    for pool, expected in pools.items()
]
