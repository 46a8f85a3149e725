"""One container's lifecycle: prepare (dir, overlay, cgroup, spec, record), run, watch, clean up.

``ContainerRun`` is used by one thread at a time; each instance runs one container once.
Its ``run()`` always cleans up (runtime state, overlay mount, cgroup, directory), whatever
happened, and never reports a failed start or an unexplained kill as exit 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

from sandpool.config.resolved import ResolvedPool
from sandpool.errors import ContainerStartFailed, RuntimeTimeout, SandpoolError
from sandpool.network.attach import ContainerNetwork
from sandpool.network.policy import NetworkPolicy
from sandpool.network.run import open_for_run, run_policy
from sandpool.runtime.base import Capability, ContainerRuntime, RunFiles
from sandpool.runtime.runner import FileArg, kill_group
from sandpool.runtime.spec import ContainerSpec, build_spec
from sandpool.worker.cgroups import ContainerCgroup, open_cgroup, parse_size
from sandpool.worker.disk import DiskSlots, WritableDisk, request_size
from sandpool.worker.exit_wait import wait_exit
from sandpool.worker.gpus import DEV_DIR, GpuLease, acquire_gpus
from sandpool.worker.limits import (
    check_limits,
    check_workdir,
    host_pids,
    with_cgroup_pids,
    with_guest_pids,
)
from sandpool.worker.overlay import mount_overlay
from sandpool.worker.ownership import STATE_DIR_ANNOTATION, new_container_id, state_dir_identity
from sandpool.worker.private import let_group_through, secure_state_dir
from sandpool.worker.pump import copy_to_fd, is_regular_file
from sandpool.worker.records import (
    KILLED_FILE,
    ContainerRecord,
    containers_dir,
    process_start_time,
)
from sandpool.worker.recovery import release_host_resources
from sandpool.worker.request import (
    EXIT_OOM,
    EXIT_RUNTIME_FAILED,
    EXIT_TIMEOUT,
    ImageLike,
    RunRequest,
    RunResult,
)
from sandpool.worker.slots import CgroupSlots
from sandpool.worker.start_errors import (
    StartContext,
    explain_death,
    first_error,
    sandbox_death,
    start_failure,
)
from sandpool.worker.uidrange import DEFAULT_BASE
from sandpool.worker.userns import ContainerUserns, off_reason, warn_once
from sandpool.worker.users import resolve_user

__all__ = ["EXIT_KILLED", "ContainerRun", "Stdio"]

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0
EXIT_KILLED = 128 + int(signal.SIGKILL)


class Stdio:
    """Where the container's stdin/stdout/stderr go: fds of the caller, or (``capture``)
    files read back into the result after the run."""

    def __init__(self, stdin: FileArg = None, stdout: FileArg = None, stderr: FileArg = None,
                 *, capture: bool = False) -> None:  # fmt: skip
        self.stdin = subprocess.DEVNULL if stdin is None else stdin
        self.stdout, self.stderr = (None, None) if capture else (stdout, stderr)
        self.capture = capture


class CapturedOutput:
    """Captured stdout and stderr: two unnamed temporary files on the container's disk (so
    they count against its disk limit) that the runtime writes into directly (no pipe, no
    reader thread), read back after the run up to a limit. Files on disk, not memory files:
    their page cache can be written back, so output larger than the container's memory limit
    does not count as its memory (gVisor charges what its Sentry writes to the sandbox). Fresh
    files start at offset 0, where gVisor's own offset starts too, so its ``pwrite`` lands
    right (``worker.pump`` is for shared files).
    """

    def __init__(self, directory: Path) -> None:
        # closed by close(), at the end of the run
        self.files = (tempfile.TemporaryFile(dir=directory),  # noqa: SIM115
                      tempfile.TemporaryFile(dir=directory))  # noqa: SIM115  # fmt: skip
        self.fds = (self.files[0].fileno(), self.files[1].fileno())

    def read(self, limit: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
        """stdout's and stderr's first ``limit`` bytes each, and how many bytes of each were
        dropped past them: never more than ``limit`` per stream in memory."""
        out, err = (_read_head(fd, limit) for fd in self.fds)
        return out, err

    def close(self) -> None:
        """Release (and so delete) both files."""
        for file in self.files:
            file.close()


def _read_head(fd: int, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the file ``fd`` and the count of bytes after them."""
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < min(size, limit):
        chunk = os.pread(fd, min(size, limit) - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks), max(0, size - offset)


class ContainerRun:
    """Run one container of ``pool`` with ``runtime`` from ``image``."""

    def __init__(self, pool: ResolvedPool, runtime: ContainerRuntime, image: ImageLike,
                 request: RunRequest, *, state_dir: Path, cgroup_parent: str,
                 start_timeout: float = START_TIMEOUT,
                 cgroup_slots: CgroupSlots | None = None,
                 disk_slots: DiskSlots | None = None,
                 gpu_dev_dir: Path = DEV_DIR,
                 userns_base: int = DEFAULT_BASE) -> None:  # fmt: skip
        self.pool, self.runtime, self.image, self.request = pool, runtime, image, request
        self.id = new_container_id(state_dir)  # in the state dir's namespace (worker.ownership)
        self.state_dir, self.userns_base = state_dir, userns_base
        self.userns: ContainerUserns | None = None
        self.dir = containers_dir(state_dir) / self.id
        self._owner = state_dir_identity(state_dir)
        self.files = RunFiles(self.dir / "pid", self.dir / "runtime.log")
        self._disks = disk_slots or DiskSlots(state_dir, 0)  # none: a disk of its own
        self.disk: WritableDisk | None = None
        self._gpu_dev_dir = gpu_dev_dir
        self.gpus = GpuLease()
        self.network: ContainerNetwork | None = None  # allow/open only (sandpool.network)
        self.start_timeout = start_timeout
        self.result = RunResult(self.id, pool.name, runtime.name, runtime.platform,
                                image.reference)  # fmt: skip
        self._exited = threading.Event()
        self._started = threading.Event()
        self._start_timed_out = False
        self._stop_requested = threading.Event()
        self._stop_lock = threading.Lock()
        self._released = False  # the cgroup may hold another container now: never kill in it
        self._proc: subprocess.Popen[bytes] | None = None
        # A warm slot of the caller's (given back at clean-up), or a cgroup of its own. Taken
        # last: nothing after it may raise and lose the slot.
        self._slots = cgroup_slots
        self.cgroup: ContainerCgroup = (cgroup_slots.take() if cgroup_slots
                                        else open_cgroup(cgroup_parent, self.id))  # fmt: skip

    # ---- preparation ----------------------------------------------------------------------

    def _command(self) -> tuple[str, ...]:
        command = self.request.command or self.image.cmd
        return (*self.image.entrypoint, *command)

    def _spec(self, rootfs: Path) -> dict[str, Any]:
        req, image = self.request, self.image
        uid, gid = resolve_user(Path(image.rootfs), image.user)
        spec = ContainerSpec(
            args=self._command(),
            rootfs=rootfs,
            cgroups_path=self.cgroup.runtime_path,
            env=(*image.env, *req.env),
            cwd=self._cwd()[0],
            uid=uid,
            gid=gid,
            cpu=req.cpu or self.pool.cpu,
            gpus=req.gpus,
            gpu_devices=self.gpus.visible_devices,
            gpu_hook=shutil.which("nvidia-container-runtime-hook") if req.gpus else None,
            mounts=req.mounts,
            annotations={
                "sandpool.pool": self.pool.name,
                "sandpool.id": self.id,
                STATE_DIR_ANNOTATION: self._owner,  # who owns it (worker.ownership)
            },
        )
        prepared = self.runtime.prepare(build_spec(spec))
        return self.userns.apply(prepared) if self.userns else prepared

    def _record(self) -> ContainerRecord:
        me = os.getpid()
        return ContainerRecord(
            id=self.id, pool=self.pool.name, runtime=self.runtime.name,
            runtime_binary=self.runtime.binary, runtime_root=str(self.runtime.root),
            runtime_args=tuple(self.runtime.global_args()), cgroup_parent=self.cgroup.rel,
            owner_pid=me, owner_start=process_start_time(me) or 0, created=time.time(),
            command=self._command(), image=self.image.reference,
        )  # fmt: skip

    def _cwd(self) -> tuple[str, str]:
        """The working directory, and where it comes from (for messages)."""
        if self.request.workdir:
            return self.request.workdir, "--workdir"
        return self.image.working_dir or "/", "the image's WorkingDir"

    def _check(self) -> int:
        """Refuse, before anything is created, what cannot start; the memory limit."""
        if not self._command():
            raise ContainerStartFailed("no command given and the image has no Entrypoint/Cmd",
                                       hint="pass a command after --")  # fmt: skip
        memory_text = self.request.memory or self.pool.memory
        memory = parse_size(memory_text)
        check_limits(self.runtime.name, memory, memory_text, self._pids)
        check_workdir(*self._cwd(), rootfs=Path(self.image.rootfs))
        return memory

    def prepare(self) -> dict[str, Any]:
        """Create the container's directory, record, disk, overlay, cgroup and bundle."""
        policy = run_policy(self.request, self.pool)
        memory = self._check()
        secure_state_dir(self.state_dir)
        self.dir.mkdir(mode=0o700)
        self._record().save(self.dir)
        self.disk = self._disks.take(request_size("disk", self.request.disk or self.pool.disk))
        self.disk.attach(self.dir)
        rootfs = self._mount_rootfs(Path(self.image.rootfs))
        has_init = self.runtime.init is not None
        self.cgroup.create(memory, host_pids(self._gvisor, self._pids, has_init))
        self.gpus = acquire_gpus(self.request.gpus, self.state_dir,
                                 sharing=self.pool.gpu_sharing,
                                 dev_dir=self._gpu_dev_dir)  # fmt: skip
        self.network = self._open_network(policy)
        self.result.network = policy.mode
        spec = self._spec(rootfs)
        spec = self.network.apply(spec, rootfs) if self.network else spec
        guest_pids = self._pids + int(has_init)
        spec = (with_guest_pids if self._gvisor else with_cgroup_pids)(spec, guest_pids)
        (self.dir / "config.json").write_text(json.dumps(spec))
        return spec

    def _open_network(self, policy: NetworkPolicy) -> ContainerNetwork | None:
        """The container's network (None for ``none``; ``sandbox.launch`` overrides this)."""
        return open_for_run(policy, self.pool, self.id, self.dir, self.state_dir)

    @property
    def _pids(self) -> int:
        return self.request.pids or self.pool.pids

    @property
    def _gvisor(self) -> bool:
        return Capability.USERSPACE_KERNEL in self.runtime.capabilities

    def _mount_rootfs(self, image_rootfs: Path) -> Path:
        """The overlay over the image; under a user namespace (``worker.userns``) over an
        idmapped view of it, owned by the container's root."""
        reason = off_reason(self.runtime, self.userns_base, self.state_dir, image_rootfs)
        if reason is not None:
            if self.userns_base > 0:  # not turned off on purpose
                warn_once(reason)
            return mount_overlay(image_rootfs, self.dir)
        self.userns = ContainerUserns.acquire(self.state_dir, self.dir, self.userns_base)
        let_group_through(self.dir, self.userns.host_id)
        (self.dir / "lower").write_text(str(image_rootfs))  # the image store's in-use check
        return self.userns.mount_rootfs(image_rootfs)

    # ---- running ----------------------------------------------------------------------------

    def _await_start(self) -> bool:
        """Wait for the runtime's pid file (the container has started): True once it exists,
        False if the runtime exited without it or the start timeout passed. Polls with a
        back-off (0.5 ms up to 10 ms) so that many concurrent starts do not keep waking up."""
        deadline = time.monotonic() + self.start_timeout
        delay = 0.0005
        while not self.files.pid_file.exists():
            if self._exited.is_set():
                return self.files.pid_file.exists()
            if time.monotonic() > deadline or self._kill_requested():
                return False
            self._exited.wait(delay)
            delay = min(delay * 1.5, 0.01)
        return True

    def _note_start(self) -> None:
        """Mark the container started; its start latency is the pid file's write time (exact
        whatever the polling interval)."""
        with contextlib.suppress(OSError):
            written = self.files.pid_file.stat().st_mtime_ns / 1e9
            latency = max(0.0, written - self.result.started_at)
            self.result.start_latency_ms = round(latency * 1000, 3)
        self._started.set()

    def _watch(self, proc: subprocess.Popen[bytes], on_started: Callable[[], None]) -> None:
        """Note the start (or stop a start that hangs), then kill the container on OOM
        (gVisor may not die by itself)."""
        if self._await_start():
            self._note_start()
        elif not self._exited.is_set() and not self._kill_requested():
            self._start_timed_out = True
            self._force_stop(proc)
        on_started()
        while not self._exited.is_set():
            if self._kill_requested():
                self._force_stop(proc)
                return
            if self.cgroup.wait_oom(0.1):
                log.info("container %s: OOM in its cgroup, killing it", self.id)
                self._force_stop(proc)
                return

    def _kill_requested(self) -> bool:
        """``stop()`` was called, or ``sandpool kill`` left its marker."""
        return self._stop_requested.is_set() or (self.dir / KILLED_FILE).exists()

    def stop(self) -> None:
        """Kill the container from another thread (its caller went away); ``run`` then ends
        with 137 and cleans up as usual. Before the start, the start is stopped at once; after
        the run's clean-up began, nothing happens (its cgroup may be another container's)."""
        self._stop_requested.set()
        if self._proc is not None:
            self._force_stop(self._proc)

    def _kill_container(self) -> bool:
        """SIGKILL the container by id and sweep its cgroup, unless clean-up has released it
        (``_stop_lock`` keeps a sweep and the release apart): False then."""
        with self._stop_lock:
            if self._released:
                return False
            with contextlib.suppress(SandpoolError):
                self.runtime.kill(self.id, signal.SIGKILL)
            self.cgroup.kill_all()
            return True

    def _force_stop(self, proc: subprocess.Popen[bytes]) -> None:
        if not self._kill_container():
            return  # the run is over: its cgroup and even its process group id may be reused
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        kill_group(proc)

    def _wait(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for the runtime to exit; stop it at the run's timeout (the watcher stops a
        start that does not finish within the start timeout)."""
        timeout = self.request.timeout or self.pool.timeout
        remaining = None if timeout is None else max(0.0, timeout - self._elapsed())
        try:
            status = wait_exit(proc, remaining)  # woken by the exit, not polled
        except subprocess.TimeoutExpired:
            self.result.timed_out = True
            self._force_stop(proc)
            status = proc.wait()
        if self._start_timed_out:
            raise RuntimeTimeout(
                f"container {self.id} did not start within {self.start_timeout:g}s "
                f"({self.runtime.name}, platform {self.runtime.platform or 'n/a'})",
                hint="runsc --platform=kvm hangs on some hosts; use systrap or ptrace",
            )
        return status

    def _elapsed(self) -> float:
        return time.time() - self.result.started_at

    def _runtime_error(self) -> str | None:
        """The runtime's own error (from its JSON log), if it logged one."""
        return first_error(self.files.log_file)

    def _sandbox_death(self, status: int) -> str | None:
        """The Sentry's or gofer's panic, if the sandbox died (gVisor; nothing for runc)."""
        return sandbox_death(self.files.panic_log) if status != 0 else None

    def _classify(self, status: int) -> None:
        result = self.result
        result.exit_code = 128 - status if status < 0 else status
        if self.cgroup.oom_killed() and not self._started.is_set():
            self._start_failure(status, oom=True)
        elif self.cgroup.oom_killed():
            result.oom_killed, result.exit_code = True, EXIT_OOM
        elif result.timed_out:
            result.exit_code = EXIT_TIMEOUT
        elif self._kill_requested():
            result.exit_code = EXIT_KILLED  # whether it had started or not
        elif not self._started.is_set():
            self._start_failure(status)
        elif death := self._sandbox_death(status):
            result.exit_code = EXIT_RUNTIME_FAILED
            result.error = explain_death(death, self._start_context())
        elif status != 0 and self._runtime_error():
            self._start_failure(status)

    def _start_context(self) -> StartContext:
        memory = self.request.memory or self.pool.memory
        host = host_pids(self._gvisor, self._pids, self.runtime.init is not None)
        return StartContext(self.runtime.name, memory, self._pids, self._cwd()[0], host)

    def _start_failure(self, status: int, *, oom: bool = False) -> None:
        message = (self._runtime_error() or self._sandbox_death(status)
                   or f"{self.runtime.name} exited {status} before start")  # fmt: skip
        self.result.error = message
        code, line = start_failure(message, self._start_context(), oom=oom)
        if code is None:
            raise ContainerStartFailed(f"container {self.id} could not start: {line}",
                                       runtime_said=self._runtime_error())  # fmt: skip
        self.result.exit_code = code

    def _output_targets(
        self, stdio: Stdio, captured: CapturedOutput | None
    ) -> tuple[FileArg, FileArg, tuple[int | None, ...]]:
        """stdout/stderr for the runtime; the caller's regular files go through a pipe under
        gVisor."""
        if captured is not None:
            return captured.fds[0], captured.fds[1], (None, None)
        if Capability.USERSPACE_KERNEL not in self.runtime.capabilities:
            return stdio.stdout, stdio.stderr, (None, None)
        files = (is_regular_file(stdio.stdout), is_regular_file(stdio.stderr))
        out = subprocess.PIPE if files[0] is not None else stdio.stdout
        err = subprocess.PIPE if files[1] is not None else stdio.stderr
        return out, err, files

    def run(self, stdio: Stdio, on_started: Callable[[], None] = lambda: None) -> RunResult:
        """Prepare, run to the end, classify, clean up; return the result."""
        self.result.started_at = time.time()
        captured: CapturedOutput | None = None
        try:
            spec = self.prepare()
            where = self.disk.path if self.disk else self.dir  # counts against its disk limit
            captured = CapturedOutput(where) if stdio.capture else None
            stdout, stderr, files = self._output_targets(stdio, captured)
            proc = self.runtime.run(self.id, self.dir, spec, self.files, stdin=stdio.stdin,
                                    stdout=stdout, stderr=stderr)  # fmt: skip
            self._proc = proc
            if self._stop_requested.is_set():
                self._force_stop(proc)
            readers = _start_copies(proc, files)
            watcher = threading.Thread(target=self._watch, args=(proc, on_started), daemon=True)
            watcher.start()
            try:
                status = self._wait(proc)
            except BaseException:  # SIGINT/SIGTERM of the caller: stop it now, not after
                self._force_stop(proc)  # `delete --force` waited for gVisor's run to end
                raise
            finally:
                self._exited.set()
                self.cgroup.interrupt()
                for t in (*readers, watcher):
                    t.join()
            self._classify(status)
            if captured is not None:
                self._keep_output(captured)
            return self.result
        finally:
            self.result.finished_at = time.time()
            on_started()
            if captured is not None:
                captured.close()
            self.cleanup()

    def _keep_output(self, captured: CapturedOutput) -> None:
        """Put the captured output, capped at the run's ``max_output``, into the result."""
        limit = parse_size(self.request.max_output or self.pool.max_output)
        (out, out_dropped), (err, err_dropped) = captured.read(limit)
        self.result.stdout, self.result.stderr = out, err
        self.result.stdout_dropped, self.result.stderr_dropped = out_dropped, err_dropped

    def cleanup(self) -> None:
        """Remove everything this container left: runtime state, processes, mount, cgroup, dir."""
        # State on disk, not `runtime state`: one exec fewer per run (~10 ms runc, ~30 ms runsc).
        with contextlib.suppress(SandpoolError):
            if self.runtime.has_state(self.id):
                self.runtime.delete(self.id, force=True)
        self.runtime.forget(self.id)
        self.gpus.release()
        if self.network is not None and (traffic := self.network.close()) is not None:
            self.result.network_bytes_in, self.result.network_bytes_out = astuple(traffic)
        with self._stop_lock:
            self._released = True  # from here on, stop() kills nothing
        release_host_resources(self.cgroup, self.dir, self._slots)
        if self.disk is not None:
            self._disks.give_back(self.disk)
            self.disk = None


def _start_copies(
    proc: subprocess.Popen[bytes], files: tuple[int | None, ...]
) -> list[threading.Thread]:
    """Copy piped output into the caller's regular files (see ``worker.pump``)."""
    pairs = zip((proc.stdout, proc.stderr), files, strict=True)
    return [copy_to_fd(stream, fd) for stream, fd in pairs if stream is not None and fd is not None]
