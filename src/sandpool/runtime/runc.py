"""runc: the standard OCI runtime, wrapped verb by verb."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from sandpool.runtime.base import Capability, ContainerRuntime

__all__ = ["RuncRuntime"]


class RuncRuntime(ContainerRuntime):
    """``runc --root ROOT <verb>``; GPUs by direct device passthrough; CRIU checkpoints."""

    name = "runc"

    def __init__(self, binary: str, root: Path, *, timeout: float = 30.0) -> None:
        super().__init__(binary, root, timeout=timeout)
        caps = {Capability.GPU_PASSTHROUGH, Capability.OOM_EVENTS, Capability.EXEC}
        if shutil.which("criu"):
            caps.add(Capability.CHECKPOINT_RESTORE)
        self.capabilities = frozenset(caps)

    def global_args(self) -> list[str]:
        """runc's only global flag sandpool sets is its state root."""
        return ["--root", str(self.root)]

    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        """runc takes the spec as built (seccomp and device rules are enforced by runc)."""
        return copy.deepcopy(spec)

    def checkpoint(self, container_id: str, image_dir: Path) -> None:
        """``runc checkpoint --image-path DIR ID`` (needs CRIU)."""
        self.call("checkpoint", "--image-path", str(image_dir), container_id, timeout=120)

    def restore(self, container_id: str, bundle: Path, image_dir: Path) -> None:
        """``runc restore --detach --image-path DIR --bundle B ID``."""
        self.call(
            "restore",
            "--detach",
            "--image-path",
            str(image_dir),
            "--bundle",
            str(bundle),
            container_id,
            timeout=120,
        )
