"""One-shot runs on warm containers: ``Sandpool.run`` claims a pool's warm container.

A pool's warm containers (``warmPool``, ``sandbox.warm``) serve one-shot runs as well as
sandbox creates. A run whose pool, image, limits (cpu, memory, pids, disk) and workdir
(unset or the warm one's) match, with no network, GPUs or mounts, claims one atomically;
anything else (or an empty pool) is a cold run, transparently (``warm_claim`` says which).

The claimed container has never run anything but its init, so the run gets a fresh writable
layer, the limits, no network, exactly as a cold run does. How the command starts:

- runc: the container's init serves its owner over a socket (``sandbox.control``): it gets
  argv, env, working directory and the caller's stdin/stdout/stderr, forks and execs the
  command, and when that ends kills whatever else runs in the container and replies with
  the wait status. No runtime process is started: this is what beats a raw ``runc run``.
- gVisor: ``runsc exec`` of the command through the init's ``exec`` mode (the same 126/127
  as runc) with the caller's fds; when it ends the sandbox's processes are SIGKILLed through
  its cgroup before the run returns. The exec stub the warm sandbox holds for a claimant's
  first exec (``sandbox.exec_stub``) is ended first, so the run's process table is pristine.

Exit code, OOM (the cgroup's OOM-kill count), timeout (124) and ``sandpool kill`` (137) are
told as for a cold run. The container is then removed in the background (the run returns
first; ``Sandpool.close`` waits for the removals) and the refiller starts a new one.

A ``WarmRun`` is a ``worker.handle.RunHandle``: ``on_container`` (a served client, the HTTP
service) gets it before the command starts, and its ``stop()`` from another thread SIGKILLs
every process of the container (the init too), so the run ends 137 as a stopped cold one
does. A claimed container is marked (``CLAIMED_FILE``) so that ``ps`` shows it running.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sandpool.config.resolved import ResolvedPool
from sandpool.errors import SandpoolError
from sandpool.network.run import run_policy
from sandpool.runtime.base import Capability
from sandpool.runtime.runner import FileArg, kill_group, spawn
from sandpool.sandbox.control import decode_status
from sandpool.sandbox.control_exec import merged_env
from sandpool.sandbox.init_binary import MOUNT_POINT
from sandpool.sandbox.launch import CLAIMED_FILE, Launched, disk_path, oom_kill_count
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import SandboxRequest
from sandpool.sizes import parse_size
from sandpool.worker.cgroups import open_cgroup
from sandpool.worker.container import EXIT_KILLED, CapturedOutput, Stdio
from sandpool.worker.exit_wait import wait_exit
from sandpool.worker.handle import RunHandle
from sandpool.worker.pump import is_regular_file
from sandpool.worker.records import KILLED_FILE
from sandpool.worker.request import (
    EXIT_OOM,
    EXIT_RUNTIME_FAILED,
    EXIT_TIMEOUT,
    ImageLike,
    RunRequest,
    RunResult,
)

__all__ = ["WarmRun", "run_on_warm", "warm_claim"]

POLL_S = 0.1  # how often a running command is checked for an OOM kill (and gVisor: kill)


def run_on_warm(
    sandboxes: SandboxManager,
    pool: ResolvedPool,
    image: ImageLike,
    request: RunRequest,
    stdio: Stdio,
    state_dir: Path,
    on_container: Callable[[RunHandle], None] | None = None,
) -> RunResult | None:
    """Run ``request`` on a claimed warm container of ``pool``; None: no match, run it cold.
    ``on_container`` gets the run before its command starts (to ``stop()`` it)."""
    began = time.time()
    claim = warm_claim(pool, request, image, stdio)
    launched = sandboxes.claim_warm(claim) if claim is not None else None
    if launched is None:
        return None
    try:
        with contextlib.suppress(OSError):  # only ``ps`` reads it
            (launched.dir / CLAIMED_FILE).touch()
        run = WarmRun(launched, pool, image, request, state_dir, began)
        if on_container is not None:
            on_container(run)
        return run.run(stdio)
    finally:
        sandboxes.retire_warm(launched)


def warm_claim(pool: ResolvedPool, request: RunRequest, image: ImageLike,
               stdio: Stdio) -> SandboxRequest | None:  # fmt: skip
    """What a one-shot run may claim from ``pool``'s warm containers; None: it runs cold."""
    if pool.warm_pool.size <= 0 or request.gpus or request.mounts:
        return None
    if not (*image.entrypoint, *(request.command or image.cmd)):
        return None  # the cold path says what is missing
    try:
        if run_policy(request, pool).mode != "none":
            return None
    except SandpoolError:
        return None  # the cold path names the bad policy
    if (
        pool.is_gvisor
        and not stdio.capture
        and (is_regular_file(stdio.stdout) is not None or is_regular_file(stdio.stderr) is not None)
    ):
        return None  # gVisor writes a shared file at its own offset: the cold path pumps
    return SandboxRequest(pool.name, request.image, request.cpu, request.memory,
                          request.pids, request.disk, workdir=request.workdir)  # fmt: skip


class WarmRun:
    """One one-shot run on one claimed warm container (``run`` once, by one thread; ``stop``
    from any thread)."""

    def __init__(self, launched: Launched, pool: ResolvedPool, image: ImageLike,
                 request: RunRequest, state_dir: Path, started_at: float) -> None:  # fmt: skip
        self.launched, self.pool, self.image, self.request = launched, pool, image, request
        self.state_dir = state_dir
        runtime = launched.runtime
        self.result = RunResult(launched.info.id, pool.name, runtime.name, runtime.platform,
                                image.reference)  # fmt: skip
        self.result.started_at = started_at
        self._cgroup_rel = launched.cgroup_rel
        self._gvisor = Capability.USERSPACE_KERNEL in runtime.capabilities
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._started = False  # the command may be running: a stop kills the container
        self._ended = False  # the run is over: a stop does nothing

    @property
    def id(self) -> str:
        """The claimed container's id (the result's, ``ps``'s, ``kill``'s)."""
        return self.launched.info.id

    def stop(self) -> None:
        """Kill the run from another thread (its caller went away): before the command
        starts it never starts; after, every process of the container is SIGKILLed. The run
        ends 137; once it has ended, nothing happens."""
        with self._lock:
            if self._ended:
                return
            self._stop_requested.set()
            started = self._started
        if started:
            self.kill()

    def _begin(self) -> bool:
        """Whether the command may start (no stop came first); from now on a stop kills."""
        with self._lock:
            self._started = not self._stop_requested.is_set()
            return self._started

    def command(self) -> tuple[str, ...]:
        """The command as a cold run would run it (empty: the cold path refuses it)."""
        return (*self.image.entrypoint, *(self.request.command or self.image.cmd))

    def run(self, stdio: Stdio) -> RunResult:
        """Run the command to its end with ``stdio``; the result, as a cold run tells it."""
        captured = CapturedOutput(disk_path(self.state_dir, self.launched.info.id)) \
            if stdio.capture else None  # fmt: skip
        ooms = 0  # nothing but the init ran in it before
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            fds = _fds(stdio, captured, null)
            run = self._run_gvisor if self._gvisor else self._run_runc
            self._classify(run(fds, ooms) if self._begin() else -1, ooms)
            if captured is not None:
                self._keep_output(captured)
        finally:
            with self._lock:
                self._ended = True
            self.result.finished_at = time.time()
            os.close(null)
            if captured is not None:
                captured.close()
        return self.result

    def _timeout(self) -> float | None:
        timeout = self.request.timeout or self.pool.timeout
        if timeout is None:
            return None
        return max(0.0, timeout - (time.time() - self.result.started_at))

    def _env(self) -> tuple[str, ...]:
        """The env a cold run's spec gives (a default PATH, the image's, the request's)."""
        return merged_env(*self.image.env, *self.request.env)

    def _run_runc(self, fds: tuple[int, int, int], ooms: int) -> int | None:
        """The wait status from the init (None: timed out; -1: the init died first)."""
        control = self.launched.control
        assert control is not None  # warm runc containers are started with one
        timeout = self._timeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            control.run(self.command(), self._env(), self.launched.info.workdir, fds)
            self._note_start()
            while (status := control.wait(_slice(deadline))) is None:
                if deadline is not None and time.monotonic() >= deadline:
                    self.kill()
                    return None
                if oom_kill_count(self._cgroup_rel) > ooms or self._stopped():
                    self.kill()  # a child's OOM: stop it all, as a cold run's watcher does
                    return -1
        except (OSError, EOFError) as error:
            if not self._stopped():  # stopped: the init was killed, as asked
                self.result.error = f"the warm container's init failed: {error}"
            return -1
        return status

    def _run_gvisor(self, fds: tuple[int, int, int], ooms: int) -> int | None:
        """``runsc exec``'s wait status (None: timed out; -1: the sandbox died first)."""
        runtime, box = self.launched.runtime, self.launched.info.id
        if self.launched.stubs is not None:  # gone (reaped) before the command starts
            self.launched.stubs.close()
        flags = ["--cwd", "/"]
        for entry in self._env():
            flags += ["--env", entry]
        argv = runtime.argv("exec", *flags, box, MOUNT_POINT, "exec",
                            self.launched.info.workdir, *self.command())  # fmt: skip
        proc = spawn(argv, stdin=fds[0], stdout=fds[1], stderr=fds[2])
        self._note_start()
        try:
            return self._wait_exec(proc, ooms)
        finally:
            self.kill()  # nothing the command left behind outlives the run
            kill_group(proc)
            proc.wait()

    def _wait_exec(self, proc: subprocess.Popen[bytes], ooms: int) -> int | None:
        timeout = self._timeout()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = wait_exit(proc, POLL_S)  # woken by the exit, not polled
                return code << 8 if code >= 0 else -code  # as a wait status
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if self._stopped() or oom_kill_count(self._cgroup_rel) > ooms:
                return -1

    def _note_start(self) -> None:
        self.result.start_latency_ms = round((time.time() - self.result.started_at) * 1000, 3)

    def _stopped(self) -> bool:
        """``stop()`` was called, or ``sandpool kill`` left its marker."""
        return self._stop_requested.is_set() or (self.launched.dir / KILLED_FILE).exists()

    def kill(self) -> None:
        """SIGKILL every process of the container (its init too, under runc)."""
        parent, _, name = self._cgroup_rel.rpartition("/")
        if name:
            open_cgroup(parent, name).kill_all()

    def _classify(self, status: int | None, ooms: int) -> None:
        result = self.result
        if status is None:
            result.timed_out, result.exit_code = True, EXIT_TIMEOUT
        elif oom_kill_count(self._cgroup_rel) > ooms:
            result.oom_killed, result.exit_code = True, EXIT_OOM
        elif self._stopped():
            result.exit_code = EXIT_KILLED
        elif status < 0:
            result.exit_code = EXIT_RUNTIME_FAILED
            result.error = result.error or "the warm container died under the run"
        else:
            result.exit_code = decode_status(status)

    def _keep_output(self, captured: CapturedOutput) -> None:
        limit = parse_size(self.request.max_output or self.pool.max_output)
        (out, out_dropped), (err, err_dropped) = captured.read(limit)
        self.result.stdout, self.result.stderr = out, err
        self.result.stdout_dropped, self.result.stderr_dropped = out_dropped, err_dropped


def _slice(deadline: float | None) -> float:
    """How long to wait for the status before looking for an OOM kill again."""
    return POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))


def _fds(stdio: Stdio, captured: CapturedOutput | None, null: int) -> tuple[int, int, int]:
    """The three fds the command gets: the caller's (inherited ones for None)."""
    if captured is not None:
        return _fd(stdio.stdin, 0, null), captured.fds[0], captured.fds[1]
    return _fd(stdio.stdin, 0, null), _fd(stdio.stdout, 1, null), _fd(stdio.stderr, 2, null)


def _fd(target: FileArg, inherited: int, null: int) -> int:
    if target is None:
        return inherited
    if target == subprocess.DEVNULL:
        return null
    if isinstance(target, int):
        return target
    return int(target.fileno())
