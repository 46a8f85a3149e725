"""Which containers and warm cgroups a state dir owns, provably, without asking anyone.

Several configurations may share a runtime root (``gvisorRoot`` defaults to ``/run/gvisor``)
and a ``cgroupParent``. So ownership is written where the runtime and the kernel keep it,
not inferred from the absence of a record: every container id of a state dir carries that
dir's tag (``sp-<tag>-<random>``, the tag a hash of the state dir's real path), its OCI spec
carries the state dir in the annotation ``sandpool.stateDir`` (runc and runsc both report
annotations in ``list``), and its warm cgroup slots carry the tag in their names
(``worker.slots``). ``gc`` and the start-of-run reconcile touch only what carries theirs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "STATE_DIR_ANNOTATION",
    "new_container_id",
    "owner_tag",
    "owns_container",
    "state_dir_identity",
]

ID_PREFIX = "sp-"
STATE_DIR_ANNOTATION = "sandpool.stateDir"


@functools.lru_cache(maxsize=64)
def state_dir_identity(state_dir: str | Path) -> str:
    """The state dir as ownership records it: its real path (two spellings of one dir agree)."""
    return os.path.realpath(state_dir)


@functools.lru_cache(maxsize=64)
def owner_tag(state_dir: str | Path) -> str:
    """Eight hex digits naming the state dir in container ids and slot names."""
    digest = hashlib.sha256(os.fsencode(state_dir_identity(state_dir))).hexdigest()
    return digest[:8]


def new_container_id(state_dir: str | Path) -> str:
    """A fresh container id in ``state_dir``'s namespace: ``sp-<tag>-<16 hex digits>``."""
    return f"{ID_PREFIX}{owner_tag(state_dir)}-{uuid.uuid4().hex[:16]}"


def owns_container(
    state_dir: str | Path, container_id: str, annotations: Mapping[str, str]
) -> bool:
    """Whether a container the runtime lists belongs to ``state_dir``: its id is in the
    state dir's namespace and, where the runtime reports annotations, it names the state dir."""
    if not container_id.startswith(f"{ID_PREFIX}{owner_tag(state_dir)}-"):
        return False
    identity = state_dir_identity(state_dir)
    return annotations.get(STATE_DIR_ANNOTATION, identity) == identity
