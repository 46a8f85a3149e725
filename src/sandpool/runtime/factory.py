"""From a resolved pool to the runtime object that runs its containers."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import RuntimeNotAvailable
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.gvisor import GvisorRuntime
from sandpool.runtime.init import find_init
from sandpool.runtime.probe import check_platform, default_platform, probe_runsc
from sandpool.runtime.runc import RuncRuntime

__all__ = ["create_runtime", "find_binary", "runc_root"]

log = logging.getLogger(__name__)


def find_binary(configured: str) -> str | None:
    """The absolute path of ``configured`` (a path, or a name looked up on PATH), or None."""
    if os.sep in configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which(configured)


def runc_root(config: ResolvedConfig) -> Path:
    """runc's state root: inside sandpool's state dir, apart from other runc users."""
    return Path(config.state_dir) / "runc"


def _missing(runtime: str, binary: str, key: str) -> RuntimeNotAvailable:
    tool = "runsc" if runtime == "gvisor" else "runc"  # the package, whatever the file is called
    return RuntimeNotAvailable(
        f"failed to create {runtime} runtime: {tool} not found at {binary}",
        hint=f"install the {tool} package or set worker.{key}",
    )


def _gvisor(pool: ResolvedPool, config: ResolvedConfig) -> GvisorRuntime:
    binary = find_binary(config.runsc_path)
    if binary is None:
        raise _missing("gvisor", config.runsc_path, "runscPath")
    info = probe_runsc(binary)
    platform = pool.gvisor_platform
    if platform is None:
        platform = default_platform(info)
        log.info(
            "pool %s: gvisorPlatform unset, using %s (runsc %s)", pool.name, platform, info.version
        )
    check_platform(info, platform)
    return GvisorRuntime(info, Path(pool.gvisor_root), platform,
                         extra_args=pool.gvisor_extra_args, init=_init("gvisor"))  # fmt: skip


def _init(runtime: str) -> str:
    """The init every container gets as PID 1 (``runtime.init``)."""
    init = find_init()
    if init is None:
        raise RuntimeNotAvailable(
            f"failed to create {runtime} runtime: no init for its containers "
            "(tini-static not found)",
            hint="install the tini package (./setup.sh does)",
        )
    return init


def create_runtime(pool: ResolvedPool, config: ResolvedConfig) -> ContainerRuntime:
    """The pool's container runtime; never silently another one (SPEC §3)."""
    if pool.is_gvisor:
        return _gvisor(pool, config)
    binary = find_binary(config.runc_path)
    if binary is None:
        raise _missing("runc", config.runc_path, "runcPath")
    return RuncRuntime(binary, runc_root(config), init=_init("runc"))
