"""A container's limits checked before anything is created, and given to each runtime so
that ``pids`` means the container's own processes (and threads) on both runtimes.

Measured on this project's CI machine (Debian bookworm, kernel 6.18, runc 1.1.5, runsc
20221219 on ptrace), ``true`` started with:

- memory: runc from 3Mi (2Mi OOMs in ``runc init``), gVisor from 14Mi (12Mi OOMs the Sentry).
  The minimums below (8Mi, 24Mi) leave room above that for a start on a loaded host.
- pids: ``runc init`` needs up to 6 pids of the container's cgroup while it starts (its Go
  threads; with fewer the start fails with ``can't get final child's PID from pipe: EOF``).
  sandpool's parent cgroup gets ``RUNC_START_PIDS`` more than the limit asked for (+1 for the
  init); the exact limit goes in the spec, and runc sets it on the container's own cgroup
  after its init's threads exist and before the command runs (as for ``docker --pids-limit``).
- gVisor: the host cgroup holds the Sentry and the gofer, 36-42 host pids for a sandbox running
  one or two processes, and on ptrace every guest process costs 7-9.5 more (40 sleeping
  processes: 417; 100: 874; 200: 1581). The guest limit is enforced inside the sandbox with
  ``RLIMIT_NPROC``, which the Sentry counts per uid over its own tasks, so a fork past the limit
  fails with EAGAIN in the container; the host limit is sized from the figures above so that
  the guest limit is what a container hits. (runsc 20221219 does not apply the OCI pids limit
  inside the sandbox, only to the host cgroup.)
"""

from __future__ import annotations

import copy
import os
from pathlib import Path, PurePosixPath
from typing import Any

from sandpool.errors import ContainerStartFailed

__all__ = [
    "GVISOR_PIDS_BASE",
    "GVISOR_PIDS_PER_PROCESS",
    "MIN_MEMORY",
    "MIN_PIDS",
    "RUNC_START_PIDS",
    "check_limits",
    "check_workdir",
    "host_pids",
    "with_cgroup_pids",
    "with_guest_pids",
]

MIB = 1 << 20
MIN_MEMORY = {"runc": 8 * MIB, "gvisor": 24 * MIB}
MIN_PIDS = 1
RUNC_START_PIDS = 64
GVISOR_PIDS_BASE = 64
GVISOR_PIDS_PER_PROCESS = 12
_SYMLINK_HOPS = 40


def check_limits(runtime: str, memory: int, memory_text: str, pids: int) -> None:
    """Refuse limits below what ``runtime`` needs to start (exit 125, naming the setting)."""
    least = MIN_MEMORY.get(runtime, 0)
    if memory < least:
        raise ContainerStartFailed(
            f"memory limit {memory_text} is below the minimum of {least // MIB}Mi that "
            f"{runtime} needs to start a container",
            hint=f"use --memory {least // MIB}Mi or more",
        )
    if pids < MIN_PIDS:
        raise ContainerStartFailed(f"pids limit {pids} is below the minimum of {MIN_PIDS}",
                                   hint="use --pids 1 or more")  # fmt: skip


def host_pids(userspace_kernel: bool, pids: int, has_init: bool) -> int:
    """``pids.max`` of the host cgroup while the container starts (the init, PID 1, is not
    counted in ``pids``: the command and what it starts get all of them)."""
    if userspace_kernel:
        return GVISOR_PIDS_BASE + GVISOR_PIDS_PER_PROCESS * (pids + int(has_init))
    return pids + int(has_init) + RUNC_START_PIDS


def with_cgroup_pids(spec: dict[str, Any], pids: int) -> dict[str, Any]:
    """``spec`` with the OCI pids limit, which runc sets on the container's own cgroup once
    ``runc init`` no longer needs its start headroom, before the command runs (runc only:
    runsc would put it on the host cgroup that holds its Sentry)."""
    out = copy.deepcopy(spec)
    out.setdefault("linux", {}).setdefault("resources", {})["pids"] = {"limit": pids}
    return out


def with_guest_pids(spec: dict[str, Any], pids: int) -> dict[str, Any]:
    """``spec`` with ``RLIMIT_NPROC`` = ``pids`` (gVisor enforces it over its guest tasks;
    the container has no CAP_SYS_RESOURCE to raise it)."""
    out = copy.deepcopy(spec)
    process = out.setdefault("process", {})
    limits = [r for r in process.get("rlimits", []) if r.get("type") != "RLIMIT_NPROC"]
    limits.append({"type": "RLIMIT_NPROC", "hard": pids, "soft": pids})
    process["rlimits"] = limits
    return out


def check_workdir(cwd: str, source: str, rootfs: Path) -> None:
    """Refuse a relative working directory, or one that is a file in the image; a missing one
    is created by both runtimes. ``source`` names where it came from (``--workdir``, …)."""
    if not cwd.startswith("/"):
        hint = f"use /{cwd.lstrip('./')} or another absolute path"
        raise ContainerStartFailed(f"{source} {cwd!r} is not an absolute path", hint=hint)
    found = _resolve_in(rootfs, cwd)
    if found is not None and found.exists() and not found.is_dir():
        raise ContainerStartFailed(f"{source} {cwd!r} is not a directory in the image",
                                   hint="name a directory; a missing one is created")  # fmt: skip


def _resolve_in(rootfs: Path, path: str) -> Path | None:
    """``path`` resolved inside ``rootfs`` as the container would see it (absolute symlinks
    point into the image, never out of it); None if a symlink loops."""
    parts = list(PurePosixPath(path).parts[1:])
    current, hops = rootfs, 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        candidate = current / part
        if not candidate.is_symlink():
            current = candidate
            continue
        hops += 1
        if hops > _SYMLINK_HOPS:
            return None
        target = os.readlink(candidate)
        current = rootfs if target.startswith("/") else current
        parts = [*PurePosixPath(target).parts[1 if target.startswith("/") else 0 :], *parts]
    return current
