"""runc: the standard OCI runtime, wrapped verb by verb."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.runtime.init import with_init

__all__ = ["RuncRuntime"]


class RuncRuntime(ContainerRuntime):
    """``runc --root ROOT <verb>``; GPUs by direct device passthrough; CRIU checkpoints."""

    name = "runc"

    def __init__(self, binary: str, root: Path, *, timeout: float = 30.0,
                 init: str | None = None) -> None:  # fmt: skip
        super().__init__(binary, root, timeout=timeout)
        self.init = init
        caps = {Capability.GPU_PASSTHROUGH, Capability.OOM_EVENTS, Capability.EXEC}
        if shutil.which("criu"):
            caps.add(Capability.CHECKPOINT_RESTORE)
        self.capabilities = frozenset(caps)

    def global_args(self) -> list[str]:
        """runc's only global flag sandpool sets is its state root."""
        return ["--root", str(self.root)]

    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec as built (runc enforces its seccomp and device rules), plus a cgroup
        namespace (``/proc/self/cgroup`` shows ``/``, not the host's cgroup path) and, with
        ``init``, that init as PID 1 (see ``with_init``)."""
        out = copy.deepcopy(spec)
        namespaces = out.setdefault("linux", {}).setdefault("namespaces", [])
        if not any(ns.get("type") == "cgroup" for ns in namespaces):
            namespaces.append({"type": "cgroup"})
        return with_init(out, self.init) if self.init else out

    def checkpoint(self, container_id: str, image_dir: Path) -> None:
        """``runc checkpoint --image-path DIR ID`` (needs CRIU)."""
        self.call("checkpoint", "--image-path", str(image_dir), container_id, timeout=120)

    def restore(self, container_id: str, bundle: Path, image_dir: Path,
                pid_file: Path | None = None) -> None:  # fmt: skip
        """``runc restore --detach --image-path DIR --bundle B [--pid-file P] ID``."""
        pid = ["--pid-file", str(pid_file)] if pid_file else []
        self.call("restore", "--detach", "--image-path", str(image_dir), "--bundle",
                  str(bundle), *pid, container_id, timeout=120)  # fmt: skip
