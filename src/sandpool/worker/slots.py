"""Warm parent cgroups ("slots"): a process keeps the parent cgroups of its finished containers
and hands them to its next ones, so most runs neither create nor remove a cgroup in every
hierarchy (with its kernel work: memcg set-up, offlining, RCU frees).

A slot is ``/<cgroupParent>/slot-<pid>-<start>-<tag>-<n>``, named after the owning process (pid
and start time in clock ticks, as container records keep them) and its state dir (the tag of
``worker.ownership``), so ``gc`` tells the idle slots of a live process from those a dead one
left (``remove_dead_slots``), and never touches another state dir's slots under a shared
``cgroupParent`` (a dead owner's slot may still hold that state dir's container). A record names
the slot its container used. A slot goes back to the idle list only if it is clean (the
runtime's ``ctr`` is gone, no process left) and the list is not full; otherwise it is removed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import weakref
from pathlib import Path

from sandpool.worker.cgroups import (
    CGROUP_ROOT,
    ContainerCgroup,
    child_names,
    open_cgroup,
    remove_stray,
)
from sandpool.worker.records import process_start_time

__all__ = ["CgroupSlots", "remove_dead_slots"]

log = logging.getLogger(__name__)
SLOT_NAME = re.compile(r"^slot-(\d+)-(\d+)-([0-9a-f]{8})-\d+$")  # pid, start, owner tag
_serial = itertools.count(1)  # unique slot names across every CgroupSlots of this process


class CgroupSlots:
    """Up to ``capacity`` idle parent cgroups under ``parent``, owned by this process and the
    state dir whose tag is ``owner``.

    Thread safe. ``take`` gives a cgroup for a new container (``create`` it as usual),
    ``give_back`` takes it after the runtime let go of the container. ``close`` removes the
    idle slots; after it, slots given back are removed at once. Idle slots are also removed
    when the object is garbage-collected or the interpreter exits (``weakref.finalize``); a
    crashed owner's slots are left to ``gc``.
    """

    def __init__(self, parent: str, capacity: int, owner: str, root: Path = CGROUP_ROOT) -> None:
        self.parent, self.capacity, self.root, self.owner = parent, capacity, root, owner
        self._lock = threading.Lock()
        self._idle: list[str] = []  # mutated in place: the finalizer holds it too
        self._closed = False
        self._pid, self._prefix = 0, ""
        self._forked()
        weakref.finalize(self, _remove_idle, parent, root, self._idle, self._pid)

    def _forked(self) -> bool:
        """True (once) in a new process: the idle slots are the parent's, forget them, and
        name new ones after this process."""
        pid = os.getpid()
        if self._pid == pid:
            return False
        self._pid = pid
        self._prefix = f"slot-{pid}-{process_start_time(pid) or 0}-{self.owner}"
        self._idle.clear()
        return True

    def take(self) -> ContainerCgroup:
        """An idle slot, or a new name (its directories appear at ``create``)."""
        with self._lock:
            self._forked()
            name = self._idle.pop() if self._idle else f"{self._prefix}-{next(_serial)}"
        return open_cgroup(self.parent, name, self.root)

    def give_back(self, cgroup: ContainerCgroup) -> None:
        """Keep ``cgroup`` for a later container if it is clean and there is room, else
        remove it."""
        cgroup.close()
        if cgroup.is_clean():
            with self._lock:
                if not self._closed and len(self._idle) < self.capacity:
                    self._idle.append(cgroup.rel.rpartition("/")[2])
                    return
        cgroup.remove()

    def close(self) -> None:
        """Remove every idle slot; slots given back later are removed, not kept."""
        with self._lock:
            self._forked()
            idle = list(self._idle)
            self._idle.clear()
            self._closed = True
        _remove_idle(self.parent, self.root, idle, self._pid)


def _remove_idle(parent: str, root: Path, idle: list[str], owner: int) -> None:
    """Remove idle slots (not in a forked child: they are its parent's)."""
    if os.getpid() != owner:
        return
    for name in list(idle):
        with contextlib.suppress(OSError):
            open_cgroup(parent, name, root).remove()
    idle.clear()


def remove_dead_slots(parent: str, owner: str, root: Path = CGROUP_ROOT) -> list[str]:
    """Remove the slots of state dir ``owner`` (its tag) under ``parent`` whose owning process
    is gone; their names. Other state dirs' slots are theirs to remove."""
    removed = []
    for name in sorted(child_names(parent, SLOT_NAME, root)):
        match = SLOT_NAME.match(name)
        assert match is not None  # child_names keeps only matching names
        if match[3] != owner or process_start_time(int(match[1])) == int(match[2]):
            continue
        if remove_stray(parent, name, root):
            log.info("gc: removed idle cgroup slot %s (owner gone)", name)
            removed.append(name)
    return removed
