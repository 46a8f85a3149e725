"""Recovery: find what a crashed sandpool left behind and remove it.

A container directory whose record's owner process is gone (or that has no record) is
garbage: its container is killed and deleted with the runtime flags it was started with,
its overlay unmounted, its cgroup removed, its directory deleted. Idle cgroup slots of dead
processes (``worker.slots``) are removed, and so are cgroups named after a container whose
directory is gone (``worker.stray_cgroups``: a clean-up cut short between the two), dead
writers' temporary files (``worker.owned_files``), and containers in the runtime roots that
have no directory. Only what this state dir provably owns is touched
(``worker.ownership``): its own directories, slots named with its tag, runtime containers
whose id is in its namespace and whose annotation names it; other configurations sharing a
gVisor root or a cgroup parent are left alone, and so is a container whose directory exists
(one still starting, or a live owner's).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import time
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig
from sandpool.errors import SandpoolError
from sandpool.network.attach import teardown as teardown_network
from sandpool.runtime.factory import create_runtime
from sandpool.runtime.gvisor import forget_state
from sandpool.runtime.runner import run_command
from sandpool.worker.cgroups import ContainerCgroup, open_cgroup
from sandpool.worker.disk import remove_dead_disks
from sandpool.worker.overlay import unmount
from sandpool.worker.owned_files import remove_dead_temp_files
from sandpool.worker.ownership import owner_tag, owns_container
from sandpool.worker.records import (
    KILLED_FILE,
    RECORD_FILE,
    ContainerRecord,
    containers_dir,
    load_records,
)
from sandpool.worker.slots import CgroupSlots, remove_dead_slots
from sandpool.worker.stray_cgroups import remove_stray_cgroups
from sandpool.worker.uidrange import release_for, release_stale
from sandpool.worker.userns import IDMAP_DIR

__all__ = [
    "collect_garbage",
    "reconcile_dead_owners",
    "release_host_resources",
    "remove_container",
    "stop_container",
]

log = logging.getLogger(__name__)
RECORDLESS_GRACE_S = 30.0


def _runtime_call(record: ContainerRecord, *args: str) -> None:
    argv = [record.runtime_binary, *record.runtime_args, *args]
    with contextlib.suppress(SandpoolError):
        run_command(argv, timeout=30, check=False)


def release_host_resources(
    cgroup: ContainerCgroup, directory: Path, slots: CgroupSlots | None = None
) -> None:
    """After the runtime let go of a container: kill stragglers, unmount its layer, remove its
    directory, then remove its cgroup or give it back to ``slots`` (the shared tail of a
    normal clean-up and of ``gc``). The directory goes first: while it exists, the cgroup is
    this container's (``stop_container`` relies on it)."""
    cgroup.kill_all()
    unmount(directory / "rootfs")
    unmount(directory / IDMAP_DIR)  # attached only while the overlay mounts (worker.idmap)
    release_for(directory)  # before the directory goes: see ``uidrange.release_stale``
    teardown_network(directory)  # namespace, veth, nftables table, address (sandpool.network)
    shutil.rmtree(directory, ignore_errors=True)
    if slots is None:
        cgroup.remove()
    else:
        slots.give_back(cgroup)


def stop_container(record: ContainerRecord, directory: Path | None = None) -> None:
    """SIGKILL the container through the runtime, by its id (its owner, if alive, then
    cleans up after it). With the container's ``directory``, a marker there tells a live
    owner to stop the container itself (a start in progress cannot be killed yet, and only
    the owner knows when its cgroup stops being this container's: a finished container's
    warm slot may hold the owner's next one). The cgroup is swept from here only where it
    provably is still this container's: one named after it, or a slot of a dead owner (no
    one gives that back)."""
    if directory is not None and (directory / RECORD_FILE).exists():  # not one being removed
        with contextlib.suppress(OSError):
            (directory / KILLED_FILE).touch()
    _runtime_call(record, "kill", "--all", record.id, str(int(signal.SIGKILL)))
    parent, _, name = record.cgroup_parent.rpartition("/")
    if name == record.id or not record.owner_alive():
        open_cgroup(parent, name).kill_all()


def remove_container(record: ContainerRecord | None, directory: Path) -> None:
    """Delete the container and every host resource it held."""
    if record is None:
        unmount(directory / "rootfs")
        unmount(directory / IDMAP_DIR)
        release_for(directory)
        shutil.rmtree(directory, ignore_errors=True)
        return
    _runtime_call(record, "delete", "--force", record.id)
    if record.runtime == "gvisor":
        forget_state(Path(record.runtime_root), record.id)
    parent, _, name = record.cgroup_parent.rpartition("/")
    release_host_resources(open_cgroup(parent, name), directory)


def _orphans_in_roots(config: ResolvedConfig) -> list[str]:
    """Delete this state dir's containers that runtimes still list but no directory
    describes. The directory is looked for after the list: a container's directory exists
    before its runtime starts it and is removed only after the runtime deleted it, so a
    container being started (or cleaned up) now is never taken for an orphan."""
    state_dir = Path(config.state_dir)
    removed = []
    seen_roots = set()
    for pool in config.pools.values():
        with contextlib.suppress(SandpoolError):
            runtime = create_runtime(pool, config)
            if (runtime.name, runtime.root) in seen_roots:
                continue
            seen_roots.add((runtime.name, runtime.root))
            for state in runtime.list():
                if not owns_container(state_dir, state.id, state.annotations):
                    continue  # another configuration's (a shared gVisor root), or not ours
                if (containers_dir(state_dir) / state.id).exists():
                    continue  # described: starting, running, or its owner's gc handles it
                with contextlib.suppress(SandpoolError):
                    runtime.delete(state.id, force=True)
                removed.append(state.id)
    return removed


def _is_garbage(directory: Path, record: ContainerRecord | None) -> bool:
    """Owner gone; or no record and old enough not to be a container still being created."""
    if record is not None:
        return not record.owner_alive()
    with contextlib.suppress(OSError):
        return time.time() - directory.stat().st_mtime > RECORDLESS_GRACE_S
    return False


def reconcile_dead_owners(config: ResolvedConfig) -> list[str]:
    """The cheap part of ``collect_garbage`` that every ``sandpool run`` does first: dead
    owners' containers, then their idle cgroup slots, the cgroups of containers whose
    directory is gone, dead owners' disks and temporary files; the container ids removed."""
    removed = []
    for directory, record in load_records(Path(config.state_dir)):
        if _is_garbage(directory, record):
            log.info("gc: removing %s (owner gone)", directory.name)
            remove_container(record, directory)
            removed.append(directory.name)
    if removed:
        release_stale(Path(config.state_dir))
    remove_dead_slots(config.cgroup_parent, owner_tag(config.state_dir))
    remove_stray_cgroups(Path(config.state_dir), config.cgroup_parent)  # a clean-up cut short
    remove_dead_disks(Path(config.state_dir))  # after the overlays above them
    remove_dead_temp_files(Path(config.state_dir) / "bin")  # a sandbox init being built
    return removed


def collect_garbage(config: ResolvedConfig) -> list[str]:
    """Remove every container whose owning process is gone; return their ids."""
    removed = reconcile_dead_owners(config)
    release_stale(Path(config.state_dir))
    return removed + _orphans_in_roots(config)
