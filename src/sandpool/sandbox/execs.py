"""One process in a sandbox: ``runc exec`` / ``runsc exec``, stdout and stderr apart, bounded.

Under runc the exec goes through sandpool's init in ``exec`` mode: it enters the working
directory, ``setsid()``s and ``execvp``s the argv, so the process leads its own process group
(a timeout or ``kill`` reaches everything it started: the host kills the group, whose leader's
host pid ``--pid-file`` gives) and a command that is missing exits 127, one that cannot run (or
a working directory that cannot be entered) 126. Under gVisor an exec'd process already leads
its own session and group (measured), and a second ``execve`` costs ~8 ms there (a new address
space), so the argv is exec'd directly: ``runsc exec``'s own failure (128 and its message) is
mapped to the same 127/126, and a group is killed from inside by one more exec of the init
(``init killpg <pid>``, the pid from ``--internal-pid-file``). A gVisor sandbox's execs
take its pre-started ``runsc exec`` (``sandbox.exec_stub``) when one is there: the same
process, pipes and pid file, only started ahead; the command then reports 126/127 itself.

Thread safety: ``start`` once; then ``kill``, ``write_stdin``, ``close_stdin``, ``wait`` and
``output.follow`` from any thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sandpool.errors import SandboxStateError, SandpoolError
from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.runtime.runner import kill_group, spawn
from sandpool.sandbox.control import ControlSocket
from sandpool.sandbox.control_exec import ControlProcess, merged_env
from sandpool.sandbox.exec_stub import StubSlot
from sandpool.sandbox.init_binary import MOUNT_POINT
from sandpool.sandbox.models import ExecRequest, ExecResult
from sandpool.sandbox.output import OutputLog

__all__ = ["ExecProcess", "new_exec_id"]

EXIT_TIMEOUT, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_KILLED = 124, 126, 127, 137
# ``runsc exec`` exits 128 with this in its message when the command could not be started.
RUNSC_EXEC_FAILED = 128
RUNSC_EXEC_ERROR = b"executing processes for container"
# After the process ended, how long to keep reading pipes that something it left behind
# (a daemon that escaped its process group) still holds open.
PIPE_GRACE_S = 1.0
_READ = 1 << 16


def new_exec_id() -> str:
    """A fresh exec id."""
    return "ex-" + uuid.uuid4().hex[:12]


class ExecProcess:
    """One exec of one sandbox; see the module docstring.

    ``end_check`` is called once the process ended with (result, OOM kills during the
    exec): the sandbox fills in what only it knows (an OOM, or that it ended under the exec).
    """

    def __init__(self, runtime: ContainerRuntime, sandbox_id: str, request: ExecRequest,
                 *, env: tuple[str, ...], cwd: str, user: str | None, pid_dir: Path,
                 output_limit: int,
                 end_check: Callable[[ExecResult], None] = lambda r: None,
                 control: ControlSocket | None = None,
                 spec_env: tuple[str, ...] = (),
                 stubs: StubSlot | None = None) -> None:  # fmt: skip
        self.id = new_exec_id()
        self.runtime, self.sandbox_id, self.request = runtime, sandbox_id, request
        self._env, self._cwd, self._user = env, cwd, user
        self._pid_file = pid_dir / f"{self.id}.pid"
        self.output = OutputLog(output_limit)
        self.result = ExecResult(self.id, sandbox_id)
        self._end_check = end_check
        self._done = threading.Event()
        self._kill_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | ControlProcess | None = None
        self._control, self._spec_env = control, spec_env  # runc: exec through the init
        self._gvisor = Capability.USERSPACE_KERNEL in runtime.capabilities
        self._stubs = stubs if self._gvisor and not user else None  # gVisor: started ahead
        self._via_stub = False
        self._skip_stdout = 0  # a stub's late ``R``, not output

    def argv(self) -> list[str]:
        """The runtime command line that runs this exec."""
        if self._gvisor:  # see the module docstring: no init in between
            flags = ["--cwd", self._cwd, "--internal-pid-file", str(self._pid_file)]
            command = list(self.request.argv)
        else:
            flags = ["--cwd", "/", "--pid-file", str(self._pid_file)]  # the init enters cwd
            command = [MOUNT_POINT, "exec", self._cwd, *self.request.argv]
        for entry in self._env:
            flags += ["--env", entry]
        if self._user:
            flags += ["--user", self._user]
        return self.runtime.argv("exec", *flags, self.sandbox_id, *command)

    def start(self) -> None:
        """Spawn the process and its pump thread."""
        stdin = subprocess.PIPE if self.request.stdin else subprocess.DEVNULL
        self.result.started_at = time.time()
        self._proc = (
            self._through_init()
            or self._through_stub()
            or spawn(self.argv(), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
        threading.Thread(target=self._pump, name=f"exec-{self.id}", daemon=True).start()

    def _through_init(self) -> ControlProcess | None:
        """The process started by the sandbox's init (``sandbox.control_exec``); None: no
        control socket, or the init could not (``runc exec`` then says why)."""
        if self._control is None or self._control.closed():
            return None
        env = merged_env(*self._spec_env, *self._env)
        try:
            return ControlProcess(self._control, self.request.argv, env, self._cwd,
                                  stdin=self.request.stdin)  # fmt: skip
        except OSError:
            return None

    def _through_stub(self) -> subprocess.Popen[bytes] | None:
        """The sandbox's pre-started ``runsc exec`` running this command (``exec_stub``);
        None: no stub waits, or it could not take the command (a plain one then)."""
        stub = self._stubs.take() if self._stubs is not None else None
        if stub is None:
            return None
        if not stub.hand_over(self.request.argv, self._env, self._cwd,
                              stdin=self.request.stdin):  # fmt: skip
            stub.close()
            return None
        self._pid_file, self._via_stub = stub.pid_file, True
        self._skip_stdout = 1 if stub.taken_unread else 0
        return stub.proc

    @property
    def done(self) -> bool:
        """Whether the exec has ended and its result is final."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> ExecResult | None:
        """The result once the exec ended (None if ``timeout`` passed first)."""
        if not self._done.wait(timeout):
            return None
        return self.result

    def write_stdin(self, data: bytes) -> None:
        """Write to the process's stdin (SandboxStateError if it has none or it is closed)."""
        pipe = self._proc.stdin if self._proc else None
        if pipe is None or pipe.closed:
            raise SandboxStateError(f"exec {self.id} has no open stdin",
                                    hint="start it with stdin=True")  # fmt: skip
        try:
            pipe.write(data)
            pipe.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise SandboxStateError(f"exec {self.id} no longer reads its stdin") from exc

    def close_stdin(self) -> None:
        """Close stdin (the process sees end of file)."""
        if self._proc and self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL the exec's process group; it ends with 137 (``killed``)."""
        if not self._done.is_set():
            self.result.killed = True
            self._kill_group()

    # ---- the pump --------------------------------------------------------------------

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        try:
            self._read_until_closed(proc)
            status = proc.wait()
        except BaseException:  # never leave a waiter hanging
            _kill(proc)
            status = proc.wait()
        finally:
            self.close_stdin()
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()
            self.output.close()
        self._finish(status)

    def _read_until_closed(self, proc: subprocess.Popen[bytes] | ControlProcess) -> None:
        timeout = self.request.timeout
        deadline = None if timeout is None else self.result.started_at + timeout
        exited_at: float | None = None
        with selectors.DefaultSelector() as sel:
            for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
                assert pipe is not None
                os.set_blocking(pipe.fileno(), False)
                sel.register(pipe.fileno(), selectors.EVENT_READ, stream)
            while sel.get_map():
                now = time.time()
                if deadline is not None and now >= deadline and not self.result.timed_out:
                    self.result.timed_out = True
                    threading.Thread(target=self._kill_group, daemon=True).start()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > PIPE_GRACE_S:
                    return
                wait = 0.25 if deadline is None else max(0.0, min(0.25, deadline - now))
                for key, _ in sel.select(wait):
                    self._read_one(sel, key.fd, str(key.data))

    def _read_one(self, sel: selectors.BaseSelector, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return
        if not data:
            sel.unregister(fd)
            return
        if stream == "stdout" and self._skip_stdout:
            data, self._skip_stdout = data[1:], 0
        if data:
            self.output.append(stream, data)

    def _finish(self, status: int) -> None:
        result = self.result
        result.finished_at = time.time()
        result.exit_code = 128 - status if status < 0 else status
        took = self._via_stub and not self._skip_stdout  # a stub ran it (its R came)
        if self._gvisor and status == RUNSC_EXEC_FAILED and not took:
            result.exit_code = self._runsc_start_failure() or result.exit_code
        dropped = self.output.dropped()
        result.stdout_dropped, result.stderr_dropped = dropped["stdout"], dropped["stderr"]
        with contextlib.suppress(Exception):
            self._end_check(result)
        if result.timed_out:
            result.exit_code = EXIT_TIMEOUT
        elif result.killed and not result.oom_killed:
            result.exit_code = EXIT_KILLED
        self._pid_file.unlink(missing_ok=True)
        self._done.set()
        if self._stubs is not None:
            self._stubs.fill()  # for the next exec: after this one, never during it

    def _runsc_start_failure(self) -> int | None:
        """126/127 when ``runsc exec`` could not start the command (its own message, the
        only thing on stderr then, says why); None if the command ran."""
        out, err = self.output.contents()
        if out or RUNSC_EXEC_ERROR not in err:
            return None
        if b"initial working directory" in err:
            return EXIT_NOT_EXECUTABLE
        if b"error finding executable" in err or b"no such file or directory" in err:
            return EXIT_NOT_FOUND
        return EXIT_NOT_EXECUTABLE

    # ---- killing -----------------------------------------------------------------------

    def _group_leader(self, wait_s: float = 2.0) -> int | None:
        """The pid the runtime wrote for the exec (host pid for runc, in-sandbox for gVisor)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(self._pid_file.read_text().strip())
            if self._proc is not None and self._proc.poll() is not None:
                return None
            time.sleep(0.01)
        return None

    def _kill_group(self) -> None:
        with self._kill_lock:
            if self._done.is_set():
                return
            if isinstance(self._proc, ControlProcess):
                self._proc.kill_group()
                return
            leader = self._group_leader()
            if leader is None:
                if self._proc is not None:
                    _kill(self._proc)
                return
            if not self._gvisor:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(leader, signal.SIGKILL)
                return
            with contextlib.suppress(SandpoolError):
                self.runtime.exec(self.sandbox_id, [MOUNT_POINT, "killpg", str(leader)],
                                  timeout=30)  # fmt: skip


def _kill(proc: subprocess.Popen[bytes] | ControlProcess) -> None:
    """SIGKILL the exec's process group (the runtime's, or the init's exec)."""
    if isinstance(proc, ControlProcess):
        proc.kill_group()
    else:
        kill_group(proc)
