"""gVisor: user containers under ``runsc``, a userspace kernel."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from sandpool.errors import OperationNotSupported
from sandpool.runtime.base import Capability, ContainerRuntime, RunFiles
from sandpool.runtime.init import with_init
from sandpool.runtime.probe import RunscInfo

__all__ = ["GvisorRuntime", "forget_state", "joins_network", "spec_requests_gpu", "state_files"]

GPU_ENV = "NVIDIA_VISIBLE_DEVICES"
# runsc before mid-2024 takes any network namespace where /proc/sys/net/core/rmem_default
# exists for the host's (gVisor issue 10704), and refuses netstack in it; since Linux 6.8 or
# so every namespace has that file. So `run` of a networked container starts in a mount
# namespace of its own where /proc/sys/net is an empty tmpfs (runsc reads nothing there it
# needs; the sandbox builds its own mounts). The shell execs runsc: same pid, same group.
HIDE_NET_SYSCTLS = ("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                    'mount -t tmpfs -o size=4k,mode=0555 none /proc/sys/net && exec "$@"',
                    "sh")  # fmt: skip


def spec_requests_gpu(spec: dict[str, Any]) -> bool:
    """Whether an OCI spec asks for NVIDIA GPUs (the env var the NVIDIA hooks read)."""
    for entry in spec.get("process", {}).get("env", []):
        key, _, value = str(entry).partition("=")
        if key == GPU_ENV and value not in ("", "void", "none"):
            return True
    return False


def joins_network(spec: dict[str, Any]) -> bool:
    """Whether the spec's network namespace is a prepared one (a path), not a new empty one."""
    namespaces = spec.get("linux", {}).get("namespaces", [])
    return any(ns.get("type") == "network" and ns.get("path") for ns in namespaces)


def state_files(root: Path, container_id: str) -> list[Path]:
    """runsc's ``<root>/<sandbox>_sandbox:<container>.state`` and ``.lock`` for a container."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    ends = (f"_sandbox:{container_id}.state", f"_sandbox:{container_id}.lock")
    return [root / name for name in names if name.endswith(ends)]


def forget_state(root: Path, container_id: str) -> None:
    """Delete those files: a start killed mid-way (kvm hang) leaves its ``.lock`` behind, and
    nothing may stay in the root once the container is gone."""
    for path in state_files(root, container_id):
        path.unlink(missing_ok=True)


class GvisorRuntime(ContainerRuntime):
    """``runsc --root ROOT --platform P --network=none [extra] <verb>`` on every subcommand.

    Never ``--ignore-cgroups``: limits would vanish and PID 1 might never exit.
    """

    name = "gvisor"

    def __init__(
        self,
        info: RunscInfo,
        root: Path,
        platform: str,
        *,
        extra_args: tuple[str, ...] = (),
        timeout: float = 30.0,
        init: str | None = None,
    ) -> None:
        super().__init__(info.binary, root, timeout=timeout)
        self.init = init
        self.info = info
        self._platform = platform
        self.extra_args = tuple(extra_args)
        caps = {Capability.OOM_EVENTS, Capability.EXEC, Capability.USERSPACE_KERNEL}
        if info.has_nvproxy:
            caps.add(Capability.GPU_NVPROXY)
        self.capabilities = frozenset(caps)

    @property
    def platform(self) -> str:
        """The gVisor platform every subcommand gets."""
        return self._platform

    def global_args(self) -> list[str]:
        """The same root, platform, network and extra flags for every subcommand."""
        return [
            "--root",
            str(self.root),
            "--platform",
            self._platform,
            "--network=none",
            *self.extra_args,
        ]

    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Drop what gVisor enforces itself or cannot honour: seccomp and device rules; with
        ``init``, run the command under it (``runtime.init``)."""
        out = copy.deepcopy(spec)
        linux = out.setdefault("linux", {})
        linux.pop("seccomp", None)
        linux.pop("devices", None)
        linux.get("resources", {}).pop("devices", None)
        return with_init(out, self.init) if self.init else out

    def log_args(self, files: RunFiles) -> list[str]:
        """``--panic-log``: a Sentry panic is written nowhere else (not to ``--log``)."""
        return [f"--panic-log={files.panic_log}"]

    def has_state(self, container_id: str) -> bool:
        """Whether runsc has a state or lock file for this container."""
        return bool(state_files(self.root, container_id))

    def forget(self, container_id: str) -> None:
        """Remove what runsc leaves after a start killed mid-way (see ``forget_state``)."""
        forget_state(self.root, container_id)

    def run_launcher(self, spec: dict[str, Any]) -> list[str]:
        """``HIDE_NET_SYSCTLS`` for a container that joins a prepared network namespace."""
        return list(HIDE_NET_SYSCTLS) if joins_network(spec) else []

    def run_args(self, spec: dict[str, Any]) -> list[str]:
        """For this container only: ``--network=sandbox`` (after the global ``none``: the last
        one counts) when its spec joins a prepared network namespace (``sandpool.network``;
        runsc keeps the mode in the sandbox's state, so kill and delete need not repeat it),
        ``--nvproxy=true`` when it requests GPUs."""
        network = ["--network=sandbox"] if joins_network(spec) else []
        if not spec_requests_gpu(spec):
            return network
        if not self.info.has_nvproxy:
            raise OperationNotSupported(
                f"GPU containers need nvproxy, which {self.binary} (version "
                f"{self.info.version}) does not offer",
                hint="install a runsc release with --nvproxy, or use containerRuntime: runc",
            )
        return [*network, "--nvproxy=true"]
