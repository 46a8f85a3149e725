"""A fake container runtime for fast tests of the layers above the runtime (no root, no runc).

``FakeRuntime.run`` starts a real, short-lived Python subprocess in its own process group, so
the worker's pid-file wait, stream capture, timeouts and group kills behave as with a real
runtime. It never runs the spec's command on the host: ``process.args`` is read as a tiny
script instead, where the first word picks the behaviour:

    ["exit", "3"]              exit with status 3
    ["echo", "hi", "there"]    print "hi there" on stdout, exit 0
    ["stderr", "oops"]         print "oops" on stderr, exit 0
    ["cat"]                    copy stdin to stdout, exit 0
    ["sleep", "1.5"]           sleep 1.5 s, exit 0
    ["fail-start", "msg"]      log ``msg`` as the runtime's JSON error and exit 1 before the
                               pid file is written (a container that never started)
    anything else              log "exec: "<word>": executable file not found in $PATH"
                               and exit 1 before start, like runc does

The pid file is written after ``start_delay`` seconds (a slow start) and before the command
runs. The object is safe to share between threads; ``calls`` records every verb in order.
Record-driven clean-up from another process (``sandpool kill``/``gc``) only sees the binary
``true``: those calls are harmless no-ops.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal as signals
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sandpool.errors import RuntimeCommandFailed
from sandpool.runtime.base import Capability, ContainerRuntime, ContainerState, RunFiles
from sandpool.runtime.runner import CommandResult, FileArg, run_command, spawn

__all__ = ["FakeRuntime"]

_SCRIPT = r"""
import json, os, shutil, sys, time
pid_file, log_file, delay, *args = sys.argv[1:]
verb, rest = (args[0], args[1:]) if args else ("", [])

def fail(message):
    with open(log_file, "a") as log:
        log.write(json.dumps({"level": "error", "msg": message}) + "\n")
    sys.exit(1)

time.sleep(float(delay))
if verb == "fail-start":
    fail(" ".join(rest))
if verb not in ("exit", "echo", "stderr", "cat", "sleep"):
    fail(f'exec: "{verb}": executable file not found in $PATH')
if pid_file != "-":
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
if verb == "exit":
    sys.exit(int(rest[0]))
if verb == "echo":
    print(" ".join(rest))
elif verb == "stderr":
    print(" ".join(rest), file=sys.stderr)
elif verb == "cat":
    shutil.copyfileobj(sys.stdin, sys.stdout)
elif verb == "sleep":
    time.sleep(float(rest[0]))
"""


class FakeRuntime(ContainerRuntime):
    """A runtime named ``fake`` whose containers are Python subprocesses (see module doc)."""

    name = "fake"
    capabilities = frozenset({Capability.EXEC})

    def __init__(self, root: Path, *, start_delay: float = 0.0) -> None:
        super().__init__(shutil.which("true") or "/bin/true", root)
        self.start_delay = start_delay
        self.calls: list[tuple[str, ...]] = []
        self.max_starting = 0
        self._lock = threading.Lock()
        self._procs: dict[str, tuple[subprocess.Popen[bytes], RunFiles, Path]] = {}

    def global_args(self) -> list[str]:
        """No global flags."""
        return []

    def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec unchanged (a copy)."""
        return copy.deepcopy(spec)

    def _record(self, *call: str) -> None:
        with self._lock:
            self.calls.append(call)

    def _starting(self) -> int:
        """Containers whose start is in flight: no pid file yet and still running."""
        return sum(
            1
            for proc, files, _ in self._procs.values()
            if proc.poll() is None and not files.pid_file.exists()
        )

    def _child(self, pid_file: str, log_file: str, args: list[str]) -> list[str]:
        return [sys.executable, "-I", "-c", _SCRIPT, pid_file, log_file,
                str(self.start_delay), *args]  # fmt: skip

    def run(
        self,
        container_id: str,
        bundle: Path,
        spec: dict[str, Any],
        files: RunFiles,
        *,
        stdin: FileArg = None,
        stdout: FileArg = None,
        stderr: FileArg = None,
    ) -> subprocess.Popen[bytes]:
        """Start the fake container; ``max_starting`` keeps the most starts seen in flight."""
        self._record("run", container_id)
        args = [str(a) for a in spec.get("process", {}).get("args", [])]
        argv = self._child(str(files.pid_file), str(files.log_file), args)
        with self._lock:
            self.max_starting = max(self.max_starting, self._starting() + 1)
            proc = spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr)
            self._procs[container_id] = (proc, files, bundle)
        return proc

    def _proc(self, verb: str, container_id: str) -> subprocess.Popen[bytes]:
        with self._lock:
            entry = self._procs.get(container_id)
        if entry is None:
            raise RuntimeCommandFailed([self.binary, verb, container_id], 1,
                                       f"container {container_id} does not exist")  # fmt: skip
        return entry[0]

    def exec(
        self, container_id: str, args: list[str], *, timeout: float | None = None
    ) -> CommandResult:
        """Run ``args`` (same convention as ``run``) as a separate process."""
        self._record("exec", container_id, *args)
        self._proc("exec", container_id)
        argv = self._child("-", os.devnull, args)
        return run_command(argv, timeout=timeout or self.timeout, check=False)

    def kill(
        self, container_id: str, sig: int = signals.SIGKILL, *, all_processes: bool = True
    ) -> None:
        """Send ``sig`` to the fake container's process group."""
        self._record("kill", container_id, str(int(sig)))
        proc = self._proc("kill", container_id)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)

    def delete(self, container_id: str, *, force: bool = True) -> None:
        """Forget the container (``force`` kills it first; else it must have stopped)."""
        self._record("delete", container_id)
        proc = self._proc("delete", container_id)
        if proc.poll() is None:
            if not force:
                raise RuntimeCommandFailed([self.binary, "delete", container_id], 1,
                                           "cannot delete a running container")  # fmt: skip
            os.killpg(proc.pid, signals.SIGKILL)
            proc.wait()
        with self._lock:
            self._procs.pop(container_id, None)

    def state(self, container_id: str) -> ContainerState:
        """``running`` or ``stopped``, with the fake container's pid."""
        self._record("state", container_id)
        proc = self._proc("state", container_id)
        with self._lock:
            bundle = self._procs[container_id][2]
        status = "running" if proc.poll() is None else "stopped"
        return ContainerState(container_id, status, proc.pid, str(bundle))

    def list(self) -> list[ContainerState]:
        """Every container not yet deleted."""
        self._record("list")
        with self._lock:
            ids = sorted(self._procs)
        return [self.state(cid) for cid in ids]

    def events(self, container_id: str) -> dict[str, Any]:
        """A stats sample with nothing measured."""
        self._record("events", container_id)
        self._proc("events", container_id)
        return {"type": "stats", "id": container_id, "data": {}}

    def has_state(self, container_id: str) -> bool:
        """Whether the container was run and not yet deleted."""
        with self._lock:
            return container_id in self._procs
