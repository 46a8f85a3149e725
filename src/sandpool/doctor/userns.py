"""Whether a pool's runc containers run in a user namespace (container root = an unprivileged
host uid), and why not when they do not: the same decision ``worker.userns`` takes per run."""

from __future__ import annotations

import os
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, ok, warn
from sandpool.worker.idmap import idmap_support
from sandpool.worker.uidrange import RANGE_SIZE
from sandpool.worker.userns import closed_ancestor

__all__ = ["userns_check", "userns_off_reason"]

CHECK = "userns"


def userns_off_reason(config: ResolvedConfig) -> str | None:
    """Why runc containers would run without a user namespace on this host; None if not."""
    base, state_dir = config.user_namespace_base, Path(config.state_dir)
    if base <= 0:
        return "worker.userNamespaceBase is 0 (turned off)"
    if os.geteuid() != 0:
        return "not running as root (no uid ranges to map)"
    if not state_dir.is_dir():
        return f"stateDir {state_dir} does not exist"
    return closed_ancestor(state_dir) or idmap_support(state_dir, base, RANGE_SIZE)


def userns_check(pool: ResolvedPool, config: ResolvedConfig, probes: HostProbes) -> Check:
    """ok with the uid ranges when runc containers get a user namespace, else warn why not."""
    if pool.is_gvisor:
        return ok(pool.name, CHECK, "not used: gVisor (its Sentry has a user namespace of its own)")
    reason = probes.userns_off_reason(config)
    if reason is None:
        base = config.user_namespace_base
        return ok(pool.name, CHECK, f"on: container root is host uid/gid {base}+ "
                  f"({RANGE_SIZE} ids per container), image layers idmapped")  # fmt: skip
    return warn(pool.name, CHECK, f"off: runc containers run as host root inside ({reason})",
                "use a kernel with idmapped mounts (>= 5.19) and a stateDir whose parents are "
                "o+x, or a gVisor pool for untrusted code")  # fmt: skip
