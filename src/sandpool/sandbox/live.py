"""One sandbox that this process owns: its state, its execs, pause/resume/terminate, and the
checks (TTL, idle, OOM, death) that the manager's monitor runs on it.

Thread safety: every method may be called from any thread; state changes happen under the
sandbox's lock and are saved to ``sandbox.json`` before the lock is released. ``terminate``
is idempotent: the first call removes the container, later calls return at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import astuple
from pathlib import Path

from sandpool.errors import SandboxError, SandboxNotFound, SandboxStateError, SandpoolError
from sandpool.network.attach import ContainerNetwork, change_policy, traffic_of
from sandpool.network.inbound import PortForward
from sandpool.network.policy import NetworkPolicy
from sandpool.runtime.base import ContainerRuntime
from sandpool.sandbox.checkpoint import dump, require_checkpoints, undump
from sandpool.sandbox.control import ControlSocket
from sandpool.sandbox.exec_stub import StubSlot
from sandpool.sandbox.execs import EXIT_KILLED, ExecProcess
from sandpool.sandbox.files import SandboxFiles
from sandpool.sandbox.launch import oom_kill_count, pid_alive, remove_sandbox, save_sandbox_file
from sandpool.sandbox.models import EndReason, ExecRequest, ExecResult, SandboxInfo, SandboxState
from sandpool.worker.records import KILLED_FILE, ContainerRecord, process_start_time
from sandpool.worker.users import resolve_user

__all__ = ["FINISHED_EXECS_KEPT", "LiveSandbox"]

FINISHED_EXECS_KEPT = 16  # per sandbox: finished execs whose output and result stay readable
_ALIVE = (SandboxState.RUNNING, SandboxState.PAUSED)  # its container's processes exist


class LiveSandbox:
    """A running (or paused) sandbox of this process; see the module docstring."""

    def __init__(self, info: SandboxInfo, runtime: ContainerRuntime, directory: Path,
                 state_dir: Path, pid: int, pid_start: int, output_limit: int,
                 network: ContainerNetwork | None = None,
                 control: ControlSocket | None = None,
                 stubs: StubSlot | None = None) -> None:  # fmt: skip
        self.info, self.runtime, self.dir, self.state_dir = info, runtime, directory, state_dir
        self.pid, self.pid_start, self.output_limit = pid, pid_start, output_limit
        self.network = network  # its DNS filter runs in this process (``allow``/``open``)
        self.forwards: dict[int, PortForward] = {}  # exposed ports (``network.inbound``)
        self.record = ContainerRecord.load(directory)
        self.files = SandboxFiles(runtime, info.id, info.workdir)
        self._lock = threading.RLock()
        self._execs: OrderedDict[str, ExecProcess] = OrderedDict()
        self._ended = threading.Event()
        self._removing = False
        self.control = control  # runc, this process's own sandbox: execs through its init
        self.stubs = stubs  # gVisor, this process's own sandbox: execs started ahead

    @property
    def id(self) -> str:
        """The sandbox id (its container's id)."""
        return self.info.id

    def save(self) -> None:
        """Write the current state next to the container record."""
        save_sandbox_file(self.dir, self.info, self.pid, self.pid_start)

    def snapshot(self) -> SandboxInfo:
        """A copy of the current state, with the bytes its network carried so far."""
        with self._lock:
            self._count_traffic()
            return SandboxInfo.from_record(self.info.to_record())

    def _count_traffic(self) -> None:
        if self.info.network != "none" and (traffic := traffic_of(self.id)) is not None:
            self.info.network_bytes_in, self.info.network_bytes_out = astuple(traffic)

    def set_network(self, policy: NetworkPolicy) -> None:
        """Change the policy of its network now (``sandpool.network.change_policy``)."""
        with self._lock:
            self.require(*_ALIVE, what="change the network of")
            change_policy(self.dir, policy)
            self.info.network, self.info.allow = policy.mode, tuple(r.text() for r in policy.allow)
            self.save()

    def expose_port(self, port: int) -> tuple[str, int]:
        """Make its TCP ``port`` reachable on the host's loopback; (host, host port)."""
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise SandboxError(f"port {port!r} is not a TCP port",
                               hint="give a whole number from 1 to 65535")  # fmt: skip
        with self._lock:
            self.require(*_ALIVE, what="expose a port of")
            if self.network is None:
                raise SandboxError(f"sandbox {self.id} has no network to expose port {port} on",
                                   hint="create it with --network allow or open")  # fmt: skip
            if port not in self.forwards:
                self.forwards[port] = PortForward((self.network.lease.address, port))
                self._note_ports()
            forward = self.forwards[port]
            return forward.host, forward.port

    def _note_ports(self) -> None:
        self.info.ports = tuple(sorted((p, f.host, f.port) for p, f in self.forwards.items()))
        self.save()

    def release_network(self) -> None:
        """Stop this process's DNS filter and port forwards, leaving the sandbox running for
        a next owner (which exposes its ports again if asked)."""
        with self._lock:
            forwards, self.forwards = list(self.forwards.values()), {}
            self._note_ports()
        for forward in forwards:
            forward.close()
        if self.network is not None:
            self.network.release()

    def touch(self) -> None:
        """Note activity now (resets the idle timer)."""
        self.info.last_activity = time.time()

    def require(self, *states: SandboxState, what: str) -> None:
        """SandboxStateError unless the sandbox is in one of ``states``."""
        state = self.info.state
        if state not in states:
            reason = f" ({self.info.reason.value})" if self.info.reason else ""
            raise SandboxStateError(f"cannot {what} sandbox {self.id}: it is {state.value}"
                                    f"{reason}", hint=_hint(state))  # fmt: skip

    # ---- execs -------------------------------------------------------------------------

    def start_exec(self, request: ExecRequest) -> ExecProcess:
        """Start one process in the sandbox (it must be running)."""
        if not request.argv:
            raise SandboxError(f"exec in sandbox {self.id} needs a command",
                               hint="pass the argv to run")  # fmt: skip
        with self._lock:
            self.require(SandboxState.RUNNING, what="exec in")
            user = self._user(request.user)
            base = oom_kill_count(self._cgroup_rel())
            process = ExecProcess(
                # runc and runsc exec both start from the sandbox's spec env and add these
                # (a claimed warm sandbox's env is not in its spec: ``exec_env``)
                self.runtime, self.id, request, env=(*self.info.exec_env, *request.env),
                cwd=request.cwd or self.info.workdir, user=user, pid_dir=self.dir,
                output_limit=self.output_limit,
                end_check=lambda result: self._classify_exec(result, base),
                control=None if user else self.control, spec_env=self.info.env,
                stubs=self.stubs,
            )  # fmt: skip
            self.touch()
            process.start()
            self._execs[process.id] = process
            self._forget_finished()
            return process

    def _user(self, user: str | None) -> str | None:
        if not user:
            return None
        uid, gid = resolve_user(self.dir / "rootfs", user)
        return f"{uid}:{gid}"

    def exec_process(self, exec_id: str) -> ExecProcess:
        """One of the sandbox's execs, running or among the last finished ones."""
        with self._lock:
            process = self._execs.get(exec_id)
        if process is None:
            raise SandboxNotFound(f"sandbox {self.id} has no exec '{exec_id}'",
                                  hint=f"the last {FINISHED_EXECS_KEPT} finished execs are "
                                  "kept")  # fmt: skip
        return process

    def exec_processes(self) -> list[ExecProcess]:
        """The running execs and the last finished ones, oldest first."""
        with self._lock:
            return list(self._execs.values())

    def running_execs(self) -> list[ExecProcess]:
        """The execs that have not ended."""
        with self._lock:
            return [p for p in self._execs.values() if not p.done]

    def _forget_finished(self) -> None:
        finished = [k for k, p in self._execs.items() if p.done]
        for key in finished[: max(0, len(finished) - FINISHED_EXECS_KEPT)]:
            del self._execs[key]

    def _classify_exec(self, result: ExecResult, oom_base: int) -> None:
        """What only the sandbox knows about an exec's end: an OOM kill, or its own end."""
        self.touch()
        count = max(oom_kill_count(self._cgroup_rel()), self.info.oom_kills)
        ended = self._end_reason_seen()
        if count > oom_base and (result.exit_code == EXIT_KILLED or ended is not None):
            result.oom_killed, result.exit_code = True, EXIT_KILLED
            self.info.oom_kills = count
        if ended is not None:
            result.sandbox_ended = (EndReason.OOM if result.oom_killed else ended).value
            result.exit_code = EXIT_KILLED
            result.error = f"sandbox {self.id} ended ({result.sandbox_ended}) during the exec"

    def _end_reason_seen(self) -> EndReason | None:
        if self.info.state not in _ALIVE:
            return self.info.reason or EndReason.ERROR
        if self.alive():
            return None
        reason = self.death_reason()
        self._mark_ending(reason)  # the monitor removes it; its state is true from now
        return reason

    def _mark_ending(self, reason: EndReason) -> bool:
        """Move to terminating for ``reason`` unless already past running; whether it did."""
        with self._lock:
            if self.info.state not in _ALIVE:
                return False
            self.info.state, self.info.reason = SandboxState.TERMINATING, reason
            self.save()
            return True

    # ---- life ----------------------------------------------------------------------------

    def _cgroup_rel(self) -> str:
        return self.record.cgroup_parent if self.record else ""

    def alive(self) -> bool:
        """Whether the sandbox's container still runs (its host process lives)."""
        return pid_alive(self.pid, self.pid_start)

    def death_reason(self) -> EndReason:
        """Why a sandbox that died on its own died."""
        if (self.dir / KILLED_FILE).exists():
            return EndReason.KILLED
        oom = oom_kill_count(self._cgroup_rel()) > 0 or self.info.oom_kills > 0
        return EndReason.OOM if oom else EndReason.ERROR

    def pause(self) -> None:
        """Freeze every process of the sandbox (its TTL keeps running)."""
        with self._lock:
            self.require(SandboxState.RUNNING, what="pause")
            self.runtime.call("pause", self.id)
            self.info.state = SandboxState.PAUSED
            self.save()

    def resume(self) -> None:
        """Thaw a paused sandbox; its idle timer starts again from now."""
        with self._lock:
            self.require(SandboxState.PAUSED, what="resume")
            self.runtime.call("resume", self.id)
            self.info.state = SandboxState.RUNNING
            self.touch()
            self.save()

    def set_deadline(self, seconds: float) -> None:
        """End the sandbox ``seconds`` from now: its TTL (counted from ready) is moved."""
        with self._lock:
            self.require(*_ALIVE, what="set the TTL of")
            now = time.time()
            self.info.ttl = now + seconds - (self.info.ready_at or now)

    def checkpoint(self) -> None:
        """Dump every process to disk with CRIU and stop the container (``checkpoint``);
        the TTL keeps running, the idle timer stops. Refused while an exec runs: its pipes
        lead to this process, which CRIU cannot take along."""
        with self._lock:
            self.require(SandboxState.RUNNING, what="checkpoint")
            require_checkpoints(self.runtime, self.id)
            if running := self.running_execs():
                raise SandboxStateError(f"cannot checkpoint sandbox {self.id}: {len(running)} "
                                        "exec(s) still running",
                                        hint="wait for them or kill them first")  # fmt: skip
            self._drop_control()  # CRIU cannot take a socket to this process along
            self.info.state = SandboxState.CHECKPOINTED  # the monitor must not see a death
            try:
                dump(self.runtime, self.id, self.dir)
            except BaseException:
                self.info.state = SandboxState.RUNNING
                raise
            self.save()

    def _drop_control(self) -> None:
        """Close the control socket to the init and wait (up to 5 s) until the init has
        closed its end too (it lives on without an owner; later execs use ``runc exec``)."""
        if self.control is None:
            return
        self.control.close()
        self.control = None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.readlink(f"/proc/{self.pid}/fd/0")
            except OSError:
                return  # fd 0 closed (or the init is gone: the dump says so)
            time.sleep(0.01)

    def restore(self) -> None:
        """Start the checkpointed processes again, with their memory; idle timer from now."""
        with self._lock:
            self.require(SandboxState.CHECKPOINTED, what="restore")
            pid = undump(self.runtime, self.id, self.dir)
            self.pid, self.pid_start = pid, process_start_time(pid) or 0
            self.info.state = SandboxState.RUNNING
            self.touch()
            self.save()

    def due(self, now: float) -> EndReason | None:
        """The reason this sandbox must end now, if any (TTL, idle, death); notes OOM kills."""
        info = self.info
        if info.state is SandboxState.TERMINATING and not self._removing:
            return info.reason or EndReason.ERROR  # found dead by an exec
        if info.state is SandboxState.CHECKPOINTED:  # nothing runs: its TTL or a kill ends it
            if (self.dir / KILLED_FILE).exists():  # `sandpool kill` (it had nothing to kill)
                return EndReason.KILLED
            past = info.deadline is not None and now >= info.deadline
            return EndReason.TTL if past else None
        if info.state not in _ALIVE:
            return None
        count = oom_kill_count(self._cgroup_rel())
        if count > info.oom_kills:
            with self._lock:
                info.oom_kills = count
                self.save()
        if not self.alive():
            return self.death_reason()
        if info.deadline is not None and now >= info.deadline:
            return EndReason.TTL
        idle = info.idle_timeout
        quiet = idle is not None and now - info.last_activity >= idle
        if info.state is SandboxState.RUNNING and quiet and not self.running_execs():
            return EndReason.IDLE
        return None

    def terminate(self, reason: EndReason, error: str | None = None) -> None:
        """Remove the container and everything it held; its execs end with 137."""
        with self._lock:
            claimed, self._removing = not self._removing, True
            if claimed:
                self._mark_ending(reason)
                self.info.error = error or self.info.error
        if not claimed:
            self._ended.wait(60)
            return
        try:
            with contextlib.suppress(SandpoolError):
                self.info.oom_kills = max(self.info.oom_kills, oom_kill_count(self._cgroup_rel()))
            with self._lock:
                self._count_traffic()  # the last count: the veth goes with the container
                forwards, self.forwards = list(self.forwards.values()), {}
            for forward in forwards:
                forward.close()
            remove_sandbox(self.record, self.dir, self.state_dir, self.network)
            if self.control is not None:
                self.control.close()
            if self.stubs is not None:
                self.stubs.close()
            for process in self.running_execs():
                process.wait(10)
        finally:
            with self._lock:
                self.info.state, self.info.ended_at = SandboxState.TERMINATED, time.time()
                self.info.ports = ()
            self._ended.set()


def _hint(state: SandboxState) -> str:
    return {
        SandboxState.PAUSED: "resume it first",
        SandboxState.CHECKPOINTED: "restore it first",
        SandboxState.CREATING: "wait until it is running",
    }.get(state, "create a new sandbox")
