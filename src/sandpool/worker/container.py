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
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandpool.config.resolved import ResolvedPool
from sandpool.errors import ContainerStartFailed, RuntimeTimeout, SandpoolError
from sandpool.runtime.base import Capability, ContainerRuntime, RunFiles
from sandpool.runtime.runner import FileArg, kill_group
from sandpool.runtime.spec import ContainerSpec, build_spec
from sandpool.worker.cgroups import ContainerCgroup, open_cgroup, parse_size
from sandpool.worker.overlay import mount_overlay
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
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_OOM,
    EXIT_TIMEOUT,
    ImageLike,
    RunRequest,
    RunResult,
)
from sandpool.worker.slots import CgroupSlots
from sandpool.worker.uidrange import DEFAULT_BASE
from sandpool.worker.userns import ContainerUserns, off_reason, warn_once
from sandpool.worker.users import resolve_user

__all__ = ["EXIT_KILLED", "ContainerRun", "Stdio", "new_container_id"]

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0
# Under gVisor the host cgroup also holds the Sentry's and gofer's threads: give them room
# on top of the pids limit asked for (user processes still map to host processes).
GVISOR_PIDS_HEADROOM = 128
EXIT_KILLED = 128 + int(signal.SIGKILL)
_NOT_FOUND_MARKERS = ("executable file not found", "error finding executable", "no such file")


def new_container_id() -> str:
    """A fresh container id: short, unique, and recognisable as sandpool's."""
    return "sp-" + uuid.uuid4().hex[:16]


class Stdio:
    """Where the container's stdin/stdout/stderr go: fds of the caller, or (``capture``)
    files read back into the result after the run."""

    def __init__(self, stdin: FileArg = None, stdout: FileArg = None, stderr: FileArg = None,
                 *, capture: bool = False) -> None:  # fmt: skip
        self.stdin = subprocess.DEVNULL if stdin is None else stdin
        self.stdout, self.stderr = (None, None) if capture else (stdout, stderr)
        self.capture = capture


class CapturedOutput:
    """Captured stdout and stderr: two unnamed temporary files in the container's directory
    that the runtime writes into directly (no pipe, no reader thread), read back after the
    run. Files on disk, not memory files: their page cache can be written back, so output
    larger than the container's memory limit does not count as its memory (gVisor charges what
    its Sentry writes to the sandbox). Fresh files start at offset 0, where gVisor's own
    offset starts too, so its ``pwrite`` lands right (``worker.pump`` is for shared files).
    """

    def __init__(self, directory: Path) -> None:
        # closed by close(), at the end of the run
        self.files = (tempfile.TemporaryFile(dir=directory),  # noqa: SIM115
                      tempfile.TemporaryFile(dir=directory))  # noqa: SIM115  # fmt: skip
        self.fds = (self.files[0].fileno(), self.files[1].fileno())

    def read(self) -> tuple[bytes, bytes]:
        """Everything written so far to stdout and to stderr."""
        out, err = (os.pread(fd, os.fstat(fd).st_size, 0) for fd in self.fds)
        return out, err

    def close(self) -> None:
        """Release (and so delete) both files."""
        for file in self.files:
            file.close()


class ContainerRun:
    """Run one container of ``pool`` with ``runtime`` from ``image``."""

    def __init__(self, pool: ResolvedPool, runtime: ContainerRuntime, image: ImageLike,
                 request: RunRequest, *, state_dir: Path, cgroup_parent: str,
                 start_timeout: float = START_TIMEOUT,
                 cgroup_slots: CgroupSlots | None = None,
                 userns_base: int = DEFAULT_BASE) -> None:  # fmt: skip
        self.pool, self.runtime, self.image, self.request = pool, runtime, image, request
        self.id = new_container_id()
        self.state_dir, self.userns_base = state_dir, userns_base
        self.userns: ContainerUserns | None = None
        self.dir = containers_dir(state_dir) / self.id
        self.files = RunFiles(self.dir / "pid", self.dir / "runtime.log")
        # A warm slot of the caller's (given back at clean-up), or a cgroup of its own.
        self._slots = cgroup_slots
        self.cgroup: ContainerCgroup = (cgroup_slots.take() if cgroup_slots
                                        else open_cgroup(cgroup_parent, self.id))  # fmt: skip
        self.start_timeout = start_timeout
        self.result = RunResult(self.id, pool.name, runtime.name, runtime.platform,
                                image.reference)  # fmt: skip
        self._exited = threading.Event()
        self._started = threading.Event()
        self._start_timed_out = False
        self._stop_requested = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None

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
            cwd=req.workdir or image.working_dir or "/",
            uid=uid,
            gid=gid,
            cpu=req.cpu or self.pool.cpu,
            gpus=req.gpus,
            gpu_hook=shutil.which("nvidia-container-runtime-hook") if req.gpus else None,
            mounts=req.mounts,
            annotations={"sandpool.pool": self.pool.name, "sandpool.id": self.id},
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

    def prepare(self) -> dict[str, Any]:
        """Create the container's directory, record, overlay, cgroup and bundle."""
        if not self._command():
            raise ContainerStartFailed("no command given and the image has no Entrypoint/Cmd",
                                       hint="pass a command after --")  # fmt: skip
        secure_state_dir(self.state_dir)
        self.dir.mkdir(mode=0o700)
        self._record().save(self.dir)
        rootfs = self._mount_rootfs(Path(self.image.rootfs))
        memory = parse_size(self.request.memory or self.pool.memory)
        pids = self.request.pids or self.pool.pids
        if Capability.USERSPACE_KERNEL in self.runtime.capabilities:
            pids += GVISOR_PIDS_HEADROOM
        self.cgroup.create(memory, pids)
        spec = self._spec(rootfs)
        (self.dir / "config.json").write_text(json.dumps(spec))
        return spec

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
        lower = self.userns.idmapped_lower(image_rootfs)
        try:
            rootfs = mount_overlay(Path(f"/proc/self/fd/{lower}"), self.dir)
        finally:
            os.close(lower)
        self.userns.own_rootfs(rootfs)
        return rootfs

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
        with 137 and cleans up as usual. Before the start, the start is stopped at once."""
        self._stop_requested.set()
        if self._proc is not None:
            self._force_stop(self._proc)

    def _force_stop(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(SandpoolError):
            self.runtime.kill(self.id, signal.SIGKILL)
        self.cgroup.kill_all()
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
            status = proc.wait(timeout=remaining)
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
        with contextlib.suppress(OSError):
            for line in reversed(self.files.log_file.read_text().splitlines()):
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("level") in ("error", "fatal"):
                        return str(entry.get("msg", "")).strip()
        return None

    def _classify(self, status: int) -> None:
        result = self.result
        result.exit_code = 128 - status if status < 0 else status
        if self.cgroup.oom_killed():
            result.oom_killed, result.exit_code = True, EXIT_OOM
        elif result.timed_out:
            result.exit_code = EXIT_TIMEOUT
        elif self._kill_requested():
            result.exit_code = EXIT_KILLED  # whether it had started or not
        elif not self._started.is_set() or (status != 0 and self._runtime_error()):
            self._start_failure(status)

    def _start_failure(self, status: int) -> None:
        message = self._runtime_error() or f"{self.runtime.name} exited {status} before start"
        self.result.error = message
        lowered = message.lower()
        if any(marker in lowered for marker in _NOT_FOUND_MARKERS):
            self.result.exit_code = EXIT_NOT_FOUND
        elif "permission denied" in lowered:
            self.result.exit_code = EXIT_NOT_EXECUTABLE
        else:
            raise ContainerStartFailed(f"container {self.id} could not start: {message}")

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
            captured = CapturedOutput(self.dir) if stdio.capture else None
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
            finally:
                self._exited.set()
                self.cgroup.interrupt()
                for t in (*readers, watcher):
                    t.join()
            self._classify(status)
            if captured is not None:
                self.result.stdout, self.result.stderr = captured.read()
            return self.result
        finally:
            self.result.finished_at = time.time()
            on_started()
            if captured is not None:
                captured.close()
            self.cleanup()

    def cleanup(self) -> None:
        """Remove everything this container left: runtime state, processes, mount, cgroup, dir."""
        # State on disk, not `runtime state`: one exec fewer per run (~10 ms runc, ~30 ms runsc).
        with contextlib.suppress(SandpoolError):
            if self.runtime.has_state(self.id):
                self.runtime.delete(self.id, force=True)
        self.runtime.forget(self.id)
        release_host_resources(self.cgroup, self.dir, self._slots)


def _start_copies(
    proc: subprocess.Popen[bytes], files: tuple[int | None, ...]
) -> list[threading.Thread]:
    """Copy piped output into the caller's regular files (see ``worker.pump``)."""
    pairs = zip((proc.stdout, proc.stderr), files, strict=True)
    return [copy_to_fd(stream, fd) for stream, fd in pairs if stream is not None and fd is not None]
