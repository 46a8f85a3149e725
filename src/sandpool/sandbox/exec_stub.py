"""gVisor execs without paying a ``runsc exec`` start: a pre-started exec "stub".

``runsc`` 20221219 passes no extra fds and no SCM_RIGHTS into a sandbox, so a gVisor exec is
a ``runsc exec`` process, and most of its cost (~25 ms idle, far more under load) is that
process starting and reaching the sandbox. A ``StubSlot`` keeps one such process started
ahead per sandbox (of the process that owns it: created, claimed or adopted): ``runsc exec
<id> /.sandpool/init stub`` with fresh pipes as its stdin, stdout and stderr (the future
exec's pipes, exactly as today's exec has them) and an ``--internal-pid-file``. The stub
(``init.c``) reads one length-prefixed request (argv, env entries, working directory) from
stdin, reading exactly its bytes so the rest of the pipe is the command's stdin, answers
``R`` on stdout (read by the owner before any output), sets the env entries on top of its
own (as ``runsc exec --env`` does), enters the directory and ``execvp``s the command in its
own process: no fork, so ``runsc exec``'s exit status is the command's, the pid file names
the command (leader of its own process group in gVisor: kills and timeouts go there, as
before), and the exec is the same process a plain ``runsc exec`` would have made, with the
same user, capabilities and limits.

An exec then costs writing the request plus the command's ``execve`` (~10 ms in gVisor on
ptrace). A slot is filled when the sandbox starts (a warm sandbox is claimed with its stub
ready) and again each time an exec ends (not when it starts: a lone exec never sees a stub,
so a first exec sees a pristine process table, the init and itself); between execs one idle
``/.sandpool/init stub`` process waits. An exec while another holds the stub, or as another
user, is a plain ``runsc exec``. The plain path stays for those, and as the fallback.
``close`` closes the stub's stdin (it exits on end of file), reaps its ``runsc exec`` and
removes its pid file. If the owner dies, the stub reads end of file and exits the same way:
nothing is left.

Why this is safe: the stub runs in the sandbox as the sandbox's user, like every exec, and
holds nothing sandbox code does not already have. Sandbox code could kill it (the exec then
falls back to a plain ``runsc exec``: ``hand_over`` reads end of file instead of ``R``, which
proves the command never started, so it never runs twice) or even read its request or
forge its output through ``/proc``, but it could equally ptrace any exec or replace the
binaries an exec runs: an exec's output was never more trusted than the sandbox. Nothing on
the host side changes: the owner writes a request and reads output.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import subprocess
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from sandpool.runtime.base import Capability, ContainerRuntime
from sandpool.runtime.runner import kill_group, spawn
from sandpool.sandbox.init_binary import MOUNT_POINT
from sandpool.worker.exit_wait import wait_exit

__all__ = ["ExecStub", "StubSlot", "started_slot", "stub_request"]

TAKEN = b"R"
# How long ``hand_over`` waits for the ``R`` (a stub still starting: its ``runsc exec``'s
# start; the sandbox's lock is held meanwhile); past it the exec goes on as a slow ``runsc
# exec`` would (its timeout applies).
TAKEN_WAIT_S = 5.0
REAP_WAIT_S = 5.0
# While set, execs leave waiting stubs alone (they are still started): the plain ``runsc
# exec`` path, for ``bench.warm``'s side-by-side comparison in one run.
PLAIN_EXECS = False


def stub_request(argv: Sequence[str], env: Sequence[str], cwd: str) -> bytes:
    """The bytes the stub reads: u32 length, then ``cwd\\0argc\\0argv...\\0env...\\0``."""
    fields = [cwd, str(len(argv)), *argv, *env]
    payload = b"".join(os.fsencode(field) + b"\0" for field in fields)
    return struct.pack("=I", len(payload)) + payload


class ExecStub:
    """One started ``runsc exec`` of the init's stub mode; see the module docstring."""

    def __init__(self, runtime: ContainerRuntime, sandbox_id: str, directory: Path) -> None:
        self.pid_file = directory / f"stub-{uuid.uuid4().hex[:12]}.pid"
        argv = runtime.argv("exec", "--cwd", "/", "--internal-pid-file", str(self.pid_file),
                            sandbox_id, MOUNT_POINT, "stub")  # fmt: skip
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)  # fmt: skip
        self.taken_unread = False  # its ``R`` is still to come (the first stdout byte)

    def hand_over(self, argv: Sequence[str], env: Sequence[str], cwd: str, *,
                  stdin: bool, wait_s: float | None = None) -> bool:  # fmt: skip
        """Give the stub its command (stdin stays open if ``stdin``); whether it took it.
        False: it is gone and never started the command (the caller ``close``s it)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(stub_request(argv, env, cwd))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        if not stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        return self._taken(TAKEN_WAIT_S if wait_s is None else wait_s)

    def _taken(self, wait_s: float) -> bool:
        """Read the stub's ``R`` (so the output starts after it); False on end of file
        (it ended without taking the command), True too if ``wait_s`` passed first."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(wait_s * 1000)):
            self.taken_unread = True  # still starting: the exec waits for it like a slow
            return True  # runsc exec would, and its reader drops the ``R``
        try:
            return os.read(fd, 1) == TAKEN
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether its ``runsc exec`` still runs."""
        return self.proc.poll() is None

    def close(self) -> None:
        """End an unused stub (end of file on its stdin), reap it, remove its pid file."""
        proc = self.proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            wait_exit(proc, REAP_WAIT_S)  # woken by its exit, not polled
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self.pid_file.unlink(missing_ok=True)


class StubSlot:
    """At most one stub of one gVisor sandbox, ready for its next exec. Thread safe."""

    def __init__(self, runtime: ContainerRuntime, sandbox_id: str, directory: Path) -> None:
        self._runtime, self._id, self._dir = runtime, sandbox_id, directory
        self._lock = threading.Lock()
        self._stub: ExecStub | None = None
        self._closed = False

    def fill(self) -> None:
        """Start a stub unless one waits (or the slot is closed); never raises."""
        with self._lock:
            if self._closed or self._stub is not None:
                return
            with contextlib.suppress(Exception):  # the exec after it goes plain
                self._stub = ExecStub(self._runtime, self._id, self._dir)

    def take(self) -> ExecStub | None:
        """The waiting stub (possibly still starting), now the caller's; None if none."""
        if PLAIN_EXECS:
            return None
        with self._lock:
            stub, self._stub = self._stub, None
        if stub is not None and not stub.alive():
            stub.close()
            return None
        return stub

    def close(self) -> None:
        """No more stubs; the waiting one ends (call once the sandbox is removed, or
        before: it exits on end of file either way)."""
        with self._lock:
            self._closed = True
            stub, self._stub = self._stub, None
        if stub is not None:
            stub.close()


def started_slot(runtime: ContainerRuntime, sandbox_id: str, directory: Path) -> StubSlot | None:
    """A gVisor sandbox's slot with its first stub starting; None for other runtimes (runc
    execs start through the init, ``sandbox.control_exec``)."""
    if Capability.USERSPACE_KERNEL not in runtime.capabilities:
        return None
    slot = StubSlot(runtime, sandbox_id, directory)
    slot.fill()
    return slot
