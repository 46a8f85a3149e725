"""Cgroups named after a container whose directory is gone: what a clean-up cut short leaves.

A container's clean-up (``recovery.release_host_resources``, for its owner and for ``gc``)
removes the container's directory, record included, before its cgroup: while the directory
exists, a warm slot is still that container's. A sandbox's cgroup (and a run's without warm
slots) is named after the container id, not after its owning process, so a process SIGKILLed
between the two steps left a cgroup that no record names and no dead-owner sweep finds.

The id says who owns it: ``sp-<tag>-<16 hex>`` (``worker.ownership``), so only this state
dir's are touched. The directory is looked for *after* the cgroups are listed: a container's
directory exists before its cgroup is made and goes only in its clean-up's last steps, so a
container starting or running now is never taken for a stray (one being cleaned up is
removed by both, harmlessly).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from sandpool.worker.cgroups import CGROUP_ROOT, child_names, remove_stray
from sandpool.worker.ownership import owner_tag
from sandpool.worker.records import containers_dir

__all__ = ["ID_CGROUP", "remove_stray_cgroups"]

log = logging.getLogger(__name__)
ID_CGROUP = re.compile(r"^sp-([0-9a-f]{8})-[0-9a-f]{16}$")  # a container id, with its tag


def remove_stray_cgroups(state_dir: Path, parent: str, root: Path = CGROUP_ROOT) -> list[str]:
    """Kill and remove the cgroups under ``parent`` named after one of ``state_dir``'s
    containers whose directory is gone; their names."""
    tag = owner_tag(state_dir)
    listed = child_names(parent, ID_CGROUP, root)
    removed = []
    for name in sorted(listed):
        match = ID_CGROUP.match(name)
        assert match is not None  # child_names keeps only matching names
        if match[1] != tag or (containers_dir(state_dir) / name).exists():
            continue  # another state dir's, or a container that still has its directory
        if remove_stray(parent, name, root):
            log.info("gc: removed cgroup %s (its container's directory is gone)", name)
            removed.append(name)
    return removed
