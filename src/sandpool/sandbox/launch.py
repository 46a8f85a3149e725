"""Starting a sandbox's container, and removing it: ``worker.container`` preparation, detached.

A sandbox is a ``ContainerRun`` (same directory, record, overlay, size-limited disk, parent
cgroup with memory/pids limits, spec with seccomp, no network, …) whose command is sandpool's
init (``sandbox.init_binary``) and that is started ``run --detach``: the container outlives
the call and any sandpool process; only its records and runtime state tie it to sandpool.

Two things differ from a one-shot run, so that another process can adopt the sandbox later:
its cgroup is named after the sandbox (never a warm slot named after the creating process),
and so is its disk (``<stateDir>/disks/box-<id>``, which ``gc`` removes once the sandbox's
directory is gone). ``sandbox.json`` next to the container record holds the sandbox's own
state (``SandboxInfo``) and the host pid that tells whether it still lives.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import ContainerStartFailed, RuntimeTimeout
from sandpool.images import Image
from sandpool.network.attach import ContainerNetwork
from sandpool.network.policy import NetworkPolicy
from sandpool.network.run import run_policy
from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.runtime.init import without_init
from sandpool.runtime.runner import kill_group, spawn
from sandpool.runtime.spec import BindMount
from sandpool.sandbox.control import ControlSocket
from sandpool.sandbox.exec_stub import StubSlot, started_slot
from sandpool.sandbox.init_binary import MOUNT_POINT, init_binary
from sandpool.sandbox.models import SandboxInfo, SandboxRequest, SandboxState
from sandpool.worker.cgroups import CGROUP_ROOT, detect_cgroup_version
from sandpool.worker.container import ContainerRun
from sandpool.worker.disk import DiskSlots, WritableDisk, disks_dir, make_disk, remove_disk
from sandpool.worker.records import ContainerRecord, process_start_time
from sandpool.worker.recovery import remove_container
from sandpool.worker.request import ImageLike, RunRequest

__all__ = [
    "CLAIMED_FILE",
    "SANDBOX_FILE",
    "Launched",
    "SandboxContainer",
    "disk_path",
    "is_warm",
    "launch_sandbox",
    "load_sandbox_file",
    "oom_kill_count",
    "remove_sandbox",
    "save_sandbox_file",
]

SANDBOX_FILE = "sandbox.json"
CLAIMED_FILE = "claimed"  # a warm container a one-shot run claimed (``sandbox.warm_run``)


def disk_path(state_dir: Path, sandbox_id: str) -> Path:
    """Where a sandbox's disk is mounted (named after the sandbox, not its creator)."""
    return disks_dir(state_dir) / f"box-{sandbox_id}"


class _SandboxDisk(DiskSlots):
    """The one disk of one sandbox: made on ``take``, removed on ``give_back``."""

    def __init__(self, state_dir: Path, sandbox_id: str) -> None:
        super().__init__(state_dir, 0)
        self.path = disk_path(state_dir, sandbox_id)

    def take(self, size: int) -> WritableDisk:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        return make_disk(self.path, size)

    def give_back(self, disk: WritableDisk) -> None:
        remove_disk(disk.path)


class SandboxContainer(ContainerRun):
    """The container of one new sandbox: prepared like a run, started detached."""

    def __init__(self, pool: ResolvedPool, runtime: ContainerRuntime, image: ImageLike,
                 request: SandboxRequest, init_path: Path, *, state_dir: Path,
                 cgroup_parent: str, start_timeout: float,
                 control: ControlSocket | None = None) -> None:  # fmt: skip
        run = RunRequest(image=request.image, cpu=request.cpu, memory=request.memory,
                         pids=request.pids, env=request.env, workdir=request.workdir,
                         mounts=(BindMount(str(init_path), MOUNT_POINT, readonly=True),),
                         disk=request.disk, network=request.network,
                         allow=request.allow)  # fmt: skip
        super().__init__(pool, runtime, image, run, state_dir=state_dir,
                         cgroup_parent=cgroup_parent, start_timeout=start_timeout)  # fmt: skip
        self._disks = _SandboxDisk(state_dir, self.id)
        self.control = control  # runc: its init serves its owner (``sandbox.control``)

    def _command(self) -> tuple[str, ...]:
        return (MOUNT_POINT, "serve" if self.control else "init")

    def _open_network(self, policy: NetworkPolicy) -> ContainerNetwork | None:
        """In a user namespace (runc), the runtime's own network namespace, plugged in once
        the container runs (``start``): ``runc exec`` could not join a prepared one (see
        ``network.attach``)."""
        if not policy.networked or self.userns is None:
            return super()._open_network(policy)
        return ContainerNetwork.open(self.id, self.dir, self.state_dir, policy,
                                     self.pool.network_settings, late=True)  # fmt: skip

    def _spec(self, rootfs: Path) -> dict[str, Any]:
        """The run's spec, with the sandbox's own init as PID 1 (not tini in front of it)."""
        return without_init(super()._spec(rootfs))

    def start(self) -> int:
        """Prepare and start the container detached; its host pid (alive while it runs).
        On failure the caller calls ``cleanup()``."""
        spec = self.prepare()
        self.cgroup.close()  # OOM kills are counted from the cgroup files (``oom_kill_count``)
        stdin = self.control.child.fileno() if self.control else subprocess.DEVNULL
        proc = spawn(self._start_argv(spec), stdin=stdin,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        if self.control:
            self.control.started()
        try:
            status = proc.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
            raise RuntimeTimeout(f"sandbox {self.id} did not start within "
                                 f"{self.start_timeout:g}s") from None  # fmt: skip
        if status != 0 or not self.files.pid_file.exists():
            error = self._runtime_error() or f"{self.runtime.name} exited {status}"
            raise ContainerStartFailed(f"sandbox {self.id} could not start: {error}")
        pid = int(self.files.pid_file.read_text().strip())
        if self.network is not None:
            self.network.attach(pid)
        return pid

    def _start_argv(self, spec: dict[str, Any]) -> list[str]:
        """``run --detach``, under the runtime's launcher for this spec (a networked gVisor
        sandbox: ``unshare --mount`` hiding ``/proc/sys/net``, see ``runtime.gvisor``)."""
        log = ["--log", str(self.files.log_file), "--log-format", "json"]
        run = self.runtime.argv("run", "--detach", "--bundle", str(self.dir), "--pid-file",
                                str(self.files.pid_file), self.id,
                                extra_global=[*log, *self.runtime.run_args(spec)])  # fmt: skip
        return [*self.runtime.run_launcher(spec), *run]


@dataclass
class Launched:
    """A started sandbox container, not yet registered (cold, or warm until claimed); its
    ``network`` (``allow``/``open``) has this process's DNS filter running."""

    info: SandboxInfo
    runtime: ContainerRuntime
    dir: Path
    pid: int
    pid_start: int
    image_digest: str
    network: ContainerNetwork | None = None
    control: ControlSocket | None = None  # runc: to its init (``sandbox.control``)
    cgroup_rel: str = ""  # its cgroup, under the controllers' roots
    stubs: StubSlot | None = None  # gVisor: its next exec, started ahead (``exec_stub``)

    def alive(self) -> bool:
        """Whether its container's process still runs."""
        return pid_alive(self.pid, self.pid_start)


def launch_sandbox(pool: ResolvedPool, runtime: ContainerRuntime, image: Image,
                   request: SandboxRequest, config: ResolvedConfig, *, start_timeout: float,
                   warm: bool = False) -> Launched:  # fmt: skip
    """Start a sandbox's container; a ``warm`` one says so in its ``sandbox.json`` at once
    (a dead owner's warm sandboxes are then never adopted). Cleans up if it cannot."""
    policy = run_policy(request, pool)  # InvalidNetworkPolicy before anything exists
    state_dir = Path(config.state_dir)
    gvisor = Capability.USERSPACE_KERNEL in runtime.capabilities
    control = None if gvisor else ControlSocket()  # runsc passes no socket in (see control)
    container = SandboxContainer(pool, runtime, image, request, init_binary(state_dir),
                                 state_dir=state_dir, cgroup_parent=config.cgroup_parent,
                                 start_timeout=start_timeout, control=control)  # fmt: skip
    info = SandboxInfo(
        container.id, pool.name, runtime.name, runtime.platform, image.reference,
        workdir=request.workdir or image.working_dir or "/", env=(*image.env, *request.env),
        network=policy.mode, allow=tuple(r.text() for r in policy.allow),
    )  # fmt: skip
    try:
        pid = container.start()
        start = process_start_time(pid) or 0
        if warm:
            info.state = SandboxState.WARM
            save_sandbox_file(container.dir, info, pid, start)
    except BaseException:
        if control:
            control.close()
        container.cleanup()
        raise
    stubs = started_slot(runtime, container.id, container.dir)  # gVisor: for the first exec
    return Launched(info, runtime, container.dir, pid, start, image.digest, container.network,
                    control, container.cgroup.rel, stubs)  # fmt: skip


def save_sandbox_file(directory: Path, info: SandboxInfo, pid: int, pid_start: int) -> None:
    """Write the sandbox's state atomically next to its container record."""
    data = {"info": info.to_record(), "pid": pid, "pidStart": pid_start}
    tmp = directory / (SANDBOX_FILE + ".tmp")
    with contextlib.suppress(FileNotFoundError):  # the directory is being removed
        tmp.write_text(json.dumps(data))
        os.replace(tmp, directory / SANDBOX_FILE)


def load_sandbox_file(directory: Path) -> tuple[SandboxInfo, int, int] | None:
    """The saved state, pid and pid start time; None if absent or unreadable."""
    try:
        data = json.loads((directory / SANDBOX_FILE).read_text())
        return SandboxInfo.from_record(data["info"]), int(data["pid"]), int(data["pidStart"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def is_warm(directory: Path) -> bool:
    """Whether the container in ``directory`` is a warm pool's sandbox, not claimed yet (a
    one-shot run's claim leaves ``CLAIMED_FILE``; its ``sandbox.json`` still says warm, so
    a dead owner's is removed, never adopted)."""
    loaded = load_sandbox_file(directory)
    return (
        loaded is not None and loaded[0].state == "warm" and not (directory / CLAIMED_FILE).exists()
    )


def pid_alive(pid: int, start: int) -> bool:
    """Whether the host process ``pid`` started at ``start`` still runs."""
    return pid > 0 and process_start_time(pid) == start


def oom_kill_count(cgroup_rel: str, root: Path = CGROUP_ROOT) -> int:
    """How many processes the kernel OOM-killed in the sandbox's cgroup so far. cgroup v1
    counts a kill in the victim's own cgroup (the runtime's ``ctr`` child), not in the
    parent that hit its limit, so both are read; v2 counts hierarchically."""
    if detect_cgroup_version(root) == 2:
        return _counter(root / cgroup_rel / "memory.events", "oom_kill")
    memory = root / "memory" / cgroup_rel
    return sum(_counter(d / "memory.oom_control", "oom_kill") for d in (memory, memory / "ctr"))


def _counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


def remove_sandbox(record: ContainerRecord | None, directory: Path, state_dir: Path,
                   network: ContainerNetwork | None = None) -> None:  # fmt: skip
    """Kill and delete the sandbox's container, then its overlay, network (this process's
    DNS filter too), directory, cgroup, disk."""
    if record is None:
        record = ContainerRecord.load(directory)
    try:
        remove_container(record, directory)
    finally:
        if network is not None:
            network.close()  # the DNS filter; the rest went with the container (teardown)
    remove_disk(disk_path(state_dir, directory.name))
