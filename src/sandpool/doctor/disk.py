"""Whether a pool's disk limit can be enforced here (``worker.disk``): each container's
writable layer is a loop-mounted ext4 of ``containerDefaults.disk``, which needs mkfs.ext4,
loop devices and the kernel's ext4."""

from __future__ import annotations

import shutil
from pathlib import Path

from sandpool.config.resolved import ResolvedPool
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, fail, ok

__all__ = ["disk_check", "disk_limit_problem"]

CHECK = "disk"


def disk_limit_problem(probes: HostProbes) -> str | None:
    """What this host lacks to enforce disk limits; None when nothing."""
    if shutil.which(probes.mkfs_ext4) is None:
        return f"{probes.mkfs_ext4} not found"
    if not (probes.dev_dir / "loop-control").exists():
        return f"no loop devices ({probes.dev_dir / 'loop-control'} is missing)"
    try:
        filesystems = Path(probes.proc_filesystems).read_text()
    except OSError as exc:
        return f"cannot read {probes.proc_filesystems}: {exc.strerror}"
    if "ext4" not in filesystems.split():
        return "the kernel offers no ext4 filesystem"
    return None


def disk_check(pool: ResolvedPool, probes: HostProbes) -> Check:
    """ok with the pool's limit when it can be enforced; fail (containers cannot start) if not."""
    problem = disk_limit_problem(probes)
    if problem is None:
        message = (f"limit {pool.disk} per container, enforced: a loop-mounted ext4 of that "
                   "size holds its writable layer (ENOSPC inside when full)")  # fmt: skip
        return ok(pool.name, CHECK, message)
    return fail(pool.name, CHECK, f"the disk limit cannot be enforced: {problem}",
                "install e2fsprogs (`./setup.sh` does), and give a worker pod /dev/loop* "
                "(privileged)")  # fmt: skip
