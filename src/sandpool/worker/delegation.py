"""cgroup v2 delegation: make the controllers sandpool needs reach its containers.

On the unified hierarchy a cgroup has a controller only if its parent lists it in
``cgroup.subtree_control``, and a cgroup other than the real root that holds processes cannot
enable any for its children (the no-internal-processes rule). sandpool's cgroups are
``/<parent>/<slot>/ctr`` under the cgroup root it sees: the real root on a host, but in a
Kubernetes pod (a cgroup namespace) the pod's own cgroup, which holds the worker's processes
and has nothing enabled below it. ``ensure_delegated`` enables ``memory`` and ``pids``
(required) and ``cpu`` and ``cpuset`` (if available) at that root and at ``/<parent>``; where
the root holds processes it first moves them into a leaf, ``<root>/init``, as kind's node
entrypoint does.
Where a required controller is not available or cannot be enabled, ``CgroupUnavailable``
(exit 125) names the cgroup and the controller.
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass
from pathlib import Path

from sandpool.errors import CgroupUnavailable

__all__ = ["LEAF", "REQUIRED", "WANTED", "Delegation", "ensure_delegated", "inspect", "plan"]

REQUIRED = ("memory", "pids")
# The runtimes put a pool's cpu quota on the container's own cgroup; runsc refuses to start
# without cpuset at the cgroup root it sees (a "mandatory" controller: only the cgroup above
# that root can give it, as the kubelet does for pods; ``start_errors`` says so).
WANTED = ("cpu", "cpuset")
LEAF = "init"
_MOVE_ROUNDS = 20
_FIX = "run the worker privileged with a writable cgroup2 mount whose root delegates them"


@dataclass(frozen=True)
class Delegation:
    """What a cgroup offers its children: controllers available to it, those already enabled
    below it, and whether it holds processes itself."""

    cgroup: Path
    available: tuple[str, ...]
    enabled: tuple[str, ...]
    has_processes: bool

    @property
    def missing(self) -> tuple[str, ...]:
        """Required controllers this cgroup does not have at all."""
        return tuple(c for c in REQUIRED if c not in self.available)

    @property
    def to_enable(self) -> tuple[str, ...]:
        """Controllers sandpool would still enable below this cgroup."""
        return tuple(c for c in (*REQUIRED, *WANTED) if c in self.available
                     and c not in self.enabled)  # fmt: skip


def _words(path: Path) -> tuple[str, ...]:
    return tuple(path.read_text().split())


def inspect(cgroup: Path) -> Delegation:
    """Read ``cgroup``'s controllers, enabled controllers and processes."""
    try:
        return Delegation(cgroup, _words(cgroup / "cgroup.controllers"),
                          _words(cgroup / "cgroup.subtree_control"),
                          bool(_words(cgroup / "cgroup.procs")))  # fmt: skip
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read cgroup {cgroup}: {exc.strerror}", hint=_FIX) from exc


def plan(root: Path) -> str:
    """What ``ensure_delegated`` finds and will do at ``root``, in words (``sandpool doctor``)."""
    state = inspect(root)
    found = (f"available: {' '.join(state.available) or 'none'}; "
             f"enabled below {root}: {' '.join(state.enabled) or 'none'}")  # fmt: skip
    if state.missing:
        return f"{found}; sandpool cannot run containers: {' and '.join(state.missing)} missing"
    if not state.to_enable:
        return f"{found}; sandpool: nothing to change"
    todo = f"enable {' '.join(state.to_enable)} below {root}"
    if state.has_processes and (root / "cgroup.type").exists():  # not the real root
        todo = f"move {root}'s processes into {root / LEAF}, then {todo}"
    return f"{found}; sandpool will {todo} at its first container"


def ensure_delegated(root: Path, parent: str) -> None:
    """Enable the controllers sandpool needs at ``root`` and ``root/parent`` (created if
    absent), moving ``root``'s own processes into ``root/init`` first if they are in the way."""
    _enable_below(root, is_root=True)
    parent_dir = root / parent
    try:
        parent_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create cgroup {parent_dir}: {exc.strerror}",
                                hint=_FIX) from exc  # fmt: skip
    _enable_below(parent_dir, is_root=False)


def _enable_below(cgroup: Path, is_root: bool) -> None:
    state = inspect(cgroup)
    if state.missing:
        available = " ".join(state.available) or "none"
        raise CgroupUnavailable(
            f"cgroup {cgroup} lacks the {state.missing[0]} controller (its parent does not "
            f"delegate it; available: {available})", hint=_FIX)  # fmt: skip
    moved = False
    for controller in state.to_enable:
        failure = _enable(cgroup, controller)
        if failure is not None and failure.errno == errno.EBUSY and is_root and not moved:
            move_processes_to_leaf(cgroup)  # the no-internal-processes rule: empty it first
            moved = True
            failure = _enable(cgroup, controller)
        if failure is not None and controller in REQUIRED:
            raise CgroupUnavailable(
                f"cannot enable the {controller} controller below cgroup {cgroup}: "
                f"{failure.strerror}", hint=_FIX) from failure  # fmt: skip


def _enable(cgroup: Path, controller: str) -> OSError | None:
    """Add ``controller`` to ``cgroup.subtree_control``; the error if the kernel refused."""
    try:
        (cgroup / "cgroup.subtree_control").write_text(f"+{controller}")
    except OSError as exc:
        return exc
    return None


def move_processes_to_leaf(cgroup: Path) -> None:
    """Move every process of ``cgroup`` into ``cgroup/init`` (processes may fork meanwhile:
    repeat until none is left)."""
    leaf = cgroup / LEAF
    try:
        leaf.mkdir(exist_ok=True)
        for _ in range(_MOVE_ROUNDS):
            pids = _words(cgroup / "cgroup.procs")
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    (leaf / "cgroup.procs").write_text(pid)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot move the processes of cgroup {cgroup} into {leaf}: "
                                f"{exc.strerror}", hint=_FIX) from exc  # fmt: skip
    raise CgroupUnavailable(f"cgroup {cgroup} keeps gaining processes; cannot empty it into {leaf}",
                            hint=_FIX)  # fmt: skip
