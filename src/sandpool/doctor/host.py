"""Checks of the host every pool shares: sandpool's state dir and the cgroup controllers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import HOST, Check, fail, ok
from sandpool.errors import SandpoolError
from sandpool.warm.protocol import server_listens
from sandpool.worker.cgroups import detect_cgroup_version
from sandpool.worker.delegation import plan

__all__ = ["cgroup_check", "ensure_writable_dir", "host_checks", "serve_check", "state_dir_check"]

NEEDED_CONTROLLERS = ("memory", "pids")
# present at the root of each v1 hierarchy (pids.max exists only below the root)
_V1_MARKERS = {"memory": "memory.oom_control", "pids": "cgroup.procs"}
_WHY = "memory limits and OOM reporting need memory, the pids limit needs pids"


def ensure_writable_dir(path: Path) -> bool:
    """Create ``path`` if missing and prove a file can be written there; True if created."""
    created = not path.exists()
    path.mkdir(mode=0o711, parents=True, exist_ok=True)  # others may not list it
    fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=path)
    os.close(fd)
    os.unlink(probe)
    return created


def state_dir_check(config: ResolvedConfig) -> Check:
    """worker.stateDir (bundles, overlays, records) exists or can be made, and is writable."""
    path = Path(config.state_dir)
    try:
        created = ensure_writable_dir(path)
    except OSError as exc:
        return fail(
            HOST,
            "stateDir",
            f"{path} is not writable: {exc.strerror or exc}",
            "run as root, or set worker.stateDir to a writable directory",
        )
    return ok(HOST, "stateDir", f"{path} writable" + (" (created it)" if created else ""))


def _v1_problems(root: Path) -> list[str]:
    problems = []
    for name in NEEDED_CONTROLLERS:
        hierarchy = root / name
        if not (hierarchy / _V1_MARKERS[name]).exists():
            problems.append(f"{name}: no hierarchy mounted at {hierarchy}")
        elif not os.access(hierarchy, os.W_OK):
            problems.append(f"{name}: {hierarchy} is not writable")
    return problems


def _v2_problems(root: Path) -> list[str]:
    try:
        available = (root / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return [f"cannot read {root / 'cgroup.controllers'}: {exc.strerror}"]
    problems = [
        f"{c}: not in {root / 'cgroup.controllers'}"
        for c in NEEDED_CONTROLLERS
        if c not in available
    ]
    if not os.access(root, os.W_OK):
        problems.append(f"{root} is not writable")
    return problems


def cgroup_check(probes: HostProbes) -> Check:
    """The cgroup version, and whether the memory and pids controllers can be used."""
    root = probes.cgroup_root
    version = detect_cgroup_version(root)
    if version == 2:
        label, problems = "cgroup v2 (unified)", _v2_problems(root)
    else:
        hybrid = " (hybrid: v2 at unified/)" if (root / "unified").is_dir() else ""
        label, problems = f"cgroup v1{hybrid}", _v1_problems(root)
    if problems:
        fix = (
            f"{_WHY}: run as root in a privileged pod with {root} mounted read-write, and "
            "boot with cgroup_enable=memory if the memory controller is off"
        )
        return fail(HOST, "cgroups", f"{label}: " + "; ".join(problems), fix)
    if version == 2:
        return ok(HOST, "cgroups", f"{label}: {_v2_plan(root)}")
    return ok(HOST, "cgroups", f"{label}: memory and pids controllers usable")


def _v2_plan(root: Path) -> str:
    try:
        return plan(root)
    except SandpoolError as exc:
        return f"memory and pids available ({exc.message})"


def serve_check(probes: HostProbes) -> Check:
    """Whether a warm ``sandpool serve`` takes this host's ``sandpool run`` (informational)."""
    path = probes.serve_socket
    if path is None:
        return ok(HOST, "serve", "no runtime directory for a serve socket: runs are in-process")
    if not server_listens(path):
        return ok(HOST, "serve", f"no `sandpool serve` on {path}: `sandpool run` starts "
                  "in-process (start `sandpool serve` for ~60 ms faster runs)")  # fmt: skip
    return ok(HOST, "serve", f"`sandpool serve` listens on {path}: `sandpool run` is served warm")


def host_checks(config: ResolvedConfig, probes: HostProbes) -> list[Check]:
    """The checks that do not depend on a pool."""
    return [state_dir_check(config), cgroup_check(probes), serve_check(probes)]
