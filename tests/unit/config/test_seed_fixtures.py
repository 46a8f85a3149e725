"""Every configuration the seed document shows, as a fixture of this repository, resolves as the
seed says. These run from a plain clone; ``test_seed.py`` checks the fixtures against the seed.

Each row: pod ``runtime`` (None = unset, the K8s default), ``containerRuntime``, ``gvisorPlatform``
(None = sandpool's default), ``gvisorRoot``, ``mode``, ``gpuType``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.config import LoadedConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "seed"
ROOT = "/run/gvisor"

Row = tuple[str | None, str, str | None, str, str, str]
EXPECTED: dict[str, dict[str, Row]] = {
    # "runtime: nvidia  # ← Pod runs with NVIDIA Container Runtime"; containerRuntime defaults.
    "01-pod-runtime-gpu-pool": {"gpu-pool": ("nvidia", "runc", None, ROOT, "local", "")},
    # "containerRuntime: gvisor  # ← User containers run in gVisor sandbox"
    "02-container-runtime-secure-pool": {"secure-pool": (None, "gvisor", None, ROOT, "local", "")},
    "03-configuration-structure": {"my-pool": ("nvidia", "gvisor", "systrap", ROOT, "local", "")},
    # Result: "Pod: Runs with default Kubernetes runtime", "User containers: Run with runc"
    "04-standard-cpu-pool-runc": {"default": (None, "runc", "systrap", ROOT, "local", "")},
    # Result: default Kubernetes runtime; "Run in gVisor sandbox"
    "05-secure-cpu-pool-gvisor": {"secure": (None, "gvisor", "systrap", ROOT, "local", "")},
    # Result: "Runs with NVIDIA Container Runtime (GPU access)"; "Run with runc"
    "06-gpu-pool-nvidia-runc": {"gpu-runc": ("nvidia", "runc", "systrap", ROOT, "local", "T4")},
    # Result: NVIDIA Container Runtime; "Run in gVisor sandbox (GPU via nvproxy)"
    "07-gpu-pool-nvidia-gvisor": {
        "gpu-gvisor": ("nvidia", "gvisor", "systrap", ROOT, "local", "T4")
    },
    "08-example1-multi-tenant": {"public": (None, "gvisor", "systrap", ROOT, "local", "")},
    "09-example2-gpu-training": {"gpu-training": ("nvidia", "runc", None, ROOT, "local", "A100")},
    "10-example3-secure-gpu-inference": {
        "gpu-inference": ("nvidia", "gvisor", "systrap", ROOT, "local", "T4")
    },
    # No mode anywhere: every pool falls back to mode local.
    "11-example4-mixed-environment": {
        "performance": (None, "runc", None, ROOT, "local", ""),
        "sandbox": (None, "gvisor", "systrap", ROOT, "local", ""),
        "gpu-fast": ("nvidia", "runc", None, ROOT, "local", ""),
        "gpu-secure": ("nvidia", "gvisor", "systrap", ROOT, "local", ""),
    },
    "12-troubleshooting-gpu": {"gpu": ("nvidia", "gvisor", None, ROOT, "local", "")},
    # The FAQ shows a bare `pools:` fragment; the fixture wraps it under `worker:`.
    "13-faq-pools-fragment": {
        "pool-a": ("nvidia", "runc", None, ROOT, "local", ""),
        "pool-b": (None, "gvisor", None, ROOT, "local", ""),
    },
}


def shown_row(pool: dict[str, object]) -> Row:
    """The six facts of one pool as ``config show --json`` prints them."""
    rc = pool["containerRuntimeConfig"]
    assert isinstance(rc, dict)
    return (
        pool["runtime"],  # type: ignore[return-value]
        pool["containerRuntime"],
        rc["gvisorPlatform"],
        rc["gvisorRoot"],
        pool["mode"],
        pool["gpuType"],
    )


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_resolves_as_the_seed_says(name: str) -> None:
    loaded = LoadedConfig.load([str(FIXTURES / f"{name}.yaml")], {})
    pools = loaded.resolved.pools
    assert list(pools) == list(EXPECTED[name])  # order kept
    for pool_name, expected in EXPECTED[name].items():
        assert shown_row(pools[pool_name].public_dict()) == expected, pool_name
    assert loaded.warnings == []  # new field names only: no legacy warning


def test_fragment_fixture_says_it_was_wrapped() -> None:
    text = (FIXTURES / "13-faq-pools-fragment.yaml").read_text()
    assert text.startswith("# The seed's FAQ shows only the `pools:` fragment")
