"""Data flows one way (STYLE.md): the controller builds from config and never touches runtime."""

from __future__ import annotations

import json
import subprocess
import sys

CONTROLLER = [
    "sandpool.controller.apply",
    "sandpool.controller.cluster",
    "sandpool.controller.manifests",
    "sandpool.cli.k8s_cmd",
]


def imported_after(*modules: str) -> set[str]:
    """Every module loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_controller_never_imports_runtime_or_worker() -> None:
    loaded = imported_after(*CONTROLLER)
    assert "sandpool.controller.cluster" in loaded  # the probe works
    assert not {m for m in loaded if m.startswith(("sandpool.runtime", "sandpool.worker"))}


def test_the_worker_command_does_not_load_the_kubernetes_client() -> None:
    loaded = imported_after("sandpool.cli.worker_cmd")
    assert "sandpool.controller.worker_env" in loaded
    assert not {m for m in loaded if m.startswith("lightkube")}
