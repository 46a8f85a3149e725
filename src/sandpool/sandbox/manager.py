"""The sandboxes of one process, by id: create, exec, files, pause, terminate, adopt.

Every operation takes and returns plain data (ids, requests, ``SandboxInfo``, events,
results), so a remote caller can drive it through a thin service. A monitor thread ends
sandboxes whose TTL (counted from ready) or idle timeout passed, notes OOM kills, and marks
sandboxes that died on their own. Terminated sandboxes stay visible (``get``/``list``) in
this process for the last ``ENDED_KEPT`` of them; their records on disk are gone with them.

Durability: a sandbox's container record names this process as its owner; ``adopt`` (run
at the start of a serving process) takes over the sandboxes of dead owners that are still
alive and removes the ones it cannot adopt; ``gc`` (``worker.recovery``) removes a dead
owner's sandboxes like any other container when no one adopted them first.

Warm pools (``sandbox.warm``): a pool with ``warmPool.size`` keeps sandboxes started ahead;
``create`` claims one when it matches and starts a cold one otherwise; they are filled from
the first use of the manager on (``start_warm``) and removed by ``close``.

Thread safe: one lock for the registry; each sandbox has its own (``sandbox.live``).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sandpool.config.resolved import ResolvedConfig
from sandpool.errors import ContainerStartFailed, SandboxNotFound, SandboxStateError, SandpoolError
from sandpool.images import ImageStore, choose_reference
from sandpool.runtime.base import ContainerRuntime
from sandpool.sandbox.exec_stub import started_slot
from sandpool.sandbox.files import FileEntry, Source
from sandpool.sandbox.launch import (
    Launched,
    launch_sandbox,
    load_sandbox_file,
    pid_alive,
    remove_sandbox,
    save_sandbox_file,
)
from sandpool.sandbox.live import LiveSandbox
from sandpool.sandbox.models import (
    EndReason,
    ExecRequest,
    ExecResult,
    ExecSummary,
    OutputEvent,
    SandboxInfo,
    SandboxRequest,
    SandboxState,
)
from sandpool.sandbox.network import asked_policy, reattach_network
from sandpool.sandbox.warm import WarmPools, WarmStats
from sandpool.sizes import parse_size
from sandpool.worker.container import START_TIMEOUT
from sandpool.worker.records import ContainerRecord, load_records, process_start_time

__all__ = ["ENDED_KEPT", "SandboxManager"]

log = logging.getLogger(__name__)
ENDED_KEPT = 256
MONITOR_INTERVAL_S = 0.25


class SandboxManager:
    """This process's sandboxes (see the module docstring)."""

    def __init__(self, config: ResolvedConfig, images: ImageStore,
                 runtime_for: Callable[[str], ContainerRuntime], *,
                 start_timeout: float = START_TIMEOUT,
                 start_gate: Callable[[str], AbstractContextManager[Any]] | None = None,
                 ) -> None:  # fmt: skip
        self.config, self.images, self.runtime_for = config, images, runtime_for
        # The pool's cap on starts in flight (``Sandpool``'s, shared with its runs).
        self.start_gate = start_gate or (lambda pool: contextlib.nullcontext())
        self.state_dir = Path(config.state_dir)
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._live: dict[str, LiveSandbox] = {}
        self._ended: OrderedDict[str, SandboxInfo] = OrderedDict()
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
        self._warm: WarmPools | None = None

    # ---- registry ------------------------------------------------------------------------

    def _sandbox(self, sandbox_id: str) -> LiveSandbox:
        with self._lock:
            live = self._live.get(sandbox_id)
            ended = self._ended.get(sandbox_id)
        if live is not None:
            return live
        if ended is not None:
            raise SandboxStateError(f"sandbox {sandbox_id} is terminated ({ended.reason})",
                                    hint="create a new sandbox")  # fmt: skip
        raise SandboxNotFound(f"no sandbox with id '{sandbox_id}'",
                              hint="`sandpool sandbox ls` lists them")  # fmt: skip

    def _register(self, sandbox: LiveSandbox) -> None:
        with self._lock:
            self._live[sandbox.id] = sandbox
            if self._monitor is None:
                self._monitor = threading.Thread(target=self._watch, name="sandbox-monitor",
                                                 daemon=True)  # fmt: skip
                self._monitor.start()

    def _retire(self, sandbox: LiveSandbox) -> None:
        with self._lock:
            self._live.pop(sandbox.id, None)
            self._ended[sandbox.id] = sandbox.snapshot()
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)

    def get(self, sandbox_id: str) -> SandboxInfo:
        """The sandbox's current state (terminated ones too, while remembered)."""
        with self._lock:
            ended = self._ended.get(sandbox_id)
        if ended is not None:
            return dataclasses.replace(ended)
        return self._sandbox(sandbox_id).snapshot()

    def list(self, pool: str | None = None, labels: Mapping[str, str] | None = None,
             state: SandboxState | str | None = None) -> list[SandboxInfo]:  # fmt: skip
        """This process's sandboxes (live, then remembered terminated ones), filtered; the
        warm ones (not yet claimed) only when ``state`` is ``warm``."""
        if state == SandboxState.WARM:
            return [i for i in self.warm() if pool is None or i.pool == pool]
        with self._lock:
            infos = [s.snapshot() for s in self._live.values()]
            infos += [dataclasses.replace(i) for i in self._ended.values()]
        wanted = dict(labels or {})
        return [
            i for i in infos
            if (pool is None or i.pool == pool) and (state is None or i.state == state)
            and all(i.labels.get(k) == v for k, v in wanted.items())
        ]  # fmt: skip

    # ---- create / end ------------------------------------------------------------------

    def create(self, request: SandboxRequest) -> SandboxInfo:
        """Start a sandbox and return it running (ContainerStartFailed etc. if it cannot): a
        warm one of the pool when one matches (``sandbox.warm``), else a new one."""
        _check_durations(request)
        launched = self._warm_pools().claim(request, self._image_digest)
        if launched is not None:
            return self._claimed(launched, request)
        launched = self._launch(request)
        self._make_running(launched.info, request)
        return self._activate(launched)

    def _launch(self, request: SandboxRequest, *, warm: bool = False) -> Launched:
        """Start the container of ``request`` (state ``warm`` or ``creating`` on disk)."""
        pool = self.config.pool(request.pool)
        image = self.images.get(choose_reference(request.image, self.config.default_image))
        with self.start_gate(pool.name):
            return launch_sandbox(pool, self.runtime_for(pool.name), image, request,
                                  self.config, start_timeout=self.start_timeout,
                                  warm=warm)  # fmt: skip

    def _claimed(self, launched: Launched, request: SandboxRequest) -> SandboxInfo:
        """A warm sandbox made the claimant's: its env (for every exec), labels, TTL from now."""
        info = launched.info
        info.env, info.exec_env = (*info.env, *request.env), tuple(request.env)
        self._make_running(info, request)
        info.created_at = info.ready_at or info.created_at
        return self._activate(launched)

    def _make_running(self, info: SandboxInfo, request: SandboxRequest) -> None:
        """Ready from now (the TTL counts from here), with the request's labels and times."""
        pool = self.config.pool(request.pool)
        info.state, info.ready_at = SandboxState.RUNNING, time.time()
        info.last_activity, info.labels = info.ready_at, dict(request.labels)
        info.ttl = request.ttl or pool.ttl
        info.idle_timeout = request.idle_timeout or pool.idle_timeout

    def _activate(self, launched: Launched) -> SandboxInfo:
        save_sandbox_file(launched.dir, launched.info, launched.pid, launched.pid_start)
        limit = parse_size(self.config.pool(launched.info.pool).max_output)
        control = launched.control
        if control is not None:
            try:  # the init outlives this process from now on
                control.claim()
            except OSError:  # it died: the watcher ends the sandbox
                control.close()
                control = None
        sandbox = LiveSandbox(launched.info, launched.runtime, launched.dir, self.state_dir,
                              launched.pid, launched.pid_start, limit, launched.network,
                              control, launched.stubs)  # fmt: skip
        self._register(sandbox)
        return sandbox.snapshot()

    def _image_digest(self, reference: str) -> str:
        return self.images.get(reference).digest

    def _discard(self, launched: Launched) -> None:
        if launched.control is not None:
            launched.control.close()
        try:
            remove_sandbox(None, launched.dir, self.state_dir, launched.network)
        finally:
            if launched.stubs is not None:
                launched.stubs.close()

    def _warm_pools(self) -> WarmPools:
        """The warm pools, started on first use (a process that never creates a sandbox
        never starts any)."""
        with self._lock:
            if self._warm is None:
                config = self.config
                if self._closed.is_set():  # closed: no more warm sandboxes
                    config = dataclasses.replace(config, pools={})
                self._warm = WarmPools(config, lambda r: self._launch(r, warm=True),
                                       self._discard)  # fmt: skip
            return self._warm

    def claim_warm(self, request: SandboxRequest) -> Launched | None:
        """A matching warm container, taken out of its pool for a one-shot run (None: a
        miss); the caller hands it back to ``retire_warm`` once the run ended."""
        return self._warm_pools().claim(request, self._image_digest)

    def retire_warm(self, used: Launched) -> None:
        """Remove a claimed warm container in the background (``close`` waits for it)."""
        self._warm_pools().retire(used)

    def warm_started(self) -> bool:
        """Whether the warm pools run (a first create or ``start_warm`` started them)."""
        with self._lock:
            return self._warm is not None

    def start_warm(self) -> None:
        """Start filling the configured warm pools now (``sandpool serve`` does at load)."""
        self._warm_pools()

    def wait_warm(self, timeout: float = 60.0) -> bool:
        """Wait until every warm pool holds its size; whether it does."""
        return self._warm_pools().wait_ready(timeout)

    def warm_stats(self) -> builtins.list[WarmStats]:
        """Each warm pool's counters: size, ready, claims, misses, refills, refill time."""
        return self._warm_pools().stats()

    def warm(self) -> builtins.list[SandboxInfo]:
        """The warm sandboxes ready to be claimed (state ``warm``)."""
        return self._warm_pools().infos()

    def terminate(self, sandbox_id: str, reason: EndReason = EndReason.KILLED) -> SandboxInfo:
        """End the sandbox and remove everything it held; its final state."""
        with self._lock:
            if sandbox_id in self._ended:
                return dataclasses.replace(self._ended[sandbox_id])
        sandbox = self._sandbox(sandbox_id)
        sandbox.terminate(reason)
        self._retire(sandbox)
        return self.get(sandbox_id)

    def set_network(self, sandbox_id: str, network: str | None,
                    allow: Sequence[str] | None = None) -> SandboxInfo:  # fmt: skip
        """Change a running (or paused) sandbox's network policy, at once (open connections
        included): ``network`` none|allow|open and ``allow`` entries as at create (``allow``
        alone means ``allow``; neither: the pool's default). Only a sandbox created with a
        network (``allow``/``open``) can change, and not to ``none`` (use ``allow`` with no
        entries: nothing is reachable). InvalidNetworkPolicy / NetworkSetupFailed say why."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.set_network(asked_policy(self.config.pool(sandbox.info.pool), network, allow))
        return sandbox.snapshot()

    def expose_port(self, sandbox_id: str, port: int) -> SandboxInfo:
        """Make the sandbox's TCP ``port`` reachable on the host's loopback, at the address in
        its ``ports`` (a networked sandbox only; until it ends, or this process does)."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.expose_port(port)
        return sandbox.snapshot()

    def pause(self, sandbox_id: str) -> SandboxInfo:
        """Freeze the sandbox (TTL keeps running, the idle timer stops)."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.pause()
        return sandbox.snapshot()

    def resume(self, sandbox_id: str) -> SandboxInfo:
        """Thaw a paused sandbox."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.resume()
        return sandbox.snapshot()

    def set_ttl(self, sandbox_id: str, seconds: float) -> SandboxInfo:
        """End the sandbox ``seconds`` from now (whatever its TTL was)."""
        if not seconds > 0:
            raise ContainerStartFailed(f"sandbox ttl must be a positive number of seconds, "
                                       f"got {seconds!r}")  # fmt: skip
        sandbox = self._sandbox(sandbox_id)
        sandbox.set_deadline(seconds)
        return sandbox.snapshot()

    def checkpoint(self, sandbox_id: str) -> SandboxInfo:
        """Dump the sandbox's processes to disk with CRIU and stop them (runc only; no exec
        may be running); ``restore`` brings them back with their memory."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.checkpoint()
        return sandbox.snapshot()

    def restore(self, sandbox_id: str) -> SandboxInfo:
        """Restore a checkpointed sandbox: the same processes, running again."""
        sandbox = self._sandbox(sandbox_id)
        sandbox.restore()
        return sandbox.snapshot()

    def _watch(self) -> None:
        """The monitor: ends what is due, each in a thread of its own (a gVisor delete takes
        ~0.5 s; fifty sandboxes reaching their TTL together must not wait in line)."""
        ending: set[str] = set()
        while not self._closed.wait(MONITOR_INTERVAL_S):
            with self._lock:
                live = [s for s in self._live.values() if s.id not in ending]
            now = time.time()
            for sandbox in live:
                with contextlib.suppress(Exception):
                    reason = sandbox.due(now)
                    if reason is not None:
                        log.info("sandbox %s: ending (%s)", sandbox.id, reason.value)
                        ending.add(sandbox.id)
                        threading.Thread(target=self._end, args=(sandbox, reason),
                                         daemon=True).start()  # fmt: skip

    def _end(self, sandbox: LiveSandbox, reason: EndReason) -> None:
        try:
            sandbox.terminate(reason)
        except Exception:  # a thread of its own: log it, and still forget the sandbox
            log.exception("sandbox %s: terminating failed", sandbox.id)
        finally:
            self._retire(sandbox)

    def close(self, terminate: bool = True) -> None:
        """Stop the monitor; ``terminate`` this process's sandboxes (eight at a time), or
        leave them running for a later ``adopt`` (their owner is then dead until someone
        adopts them)."""
        self._closed.set()
        with self._lock:
            warm, self._warm = self._warm, None
        if warm is not None:
            warm.close()
        if self._monitor is not None:
            self._monitor.join()
        with self._lock:
            live = list(self._live.values())
        if not terminate:
            for sandbox in live:  # its next owner (``adopt``) starts its DNS filter again
                sandbox.release_network()
                if sandbox.stubs is not None:  # its exec stub ends (an adopter starts its own)
                    sandbox.stubs.close()
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: self._end(s, EndReason.KILLED), live))

    # ---- execs ----------------------------------------------------------------------------

    def exec_start(self, sandbox_id: str, request: ExecRequest) -> str:
        """Start a process in the sandbox; its exec id (for events, wait, stdin, kill)."""
        return self._sandbox(sandbox_id).start_exec(request).id

    def execs(self, sandbox_id: str) -> builtins.list[ExecSummary]:
        """The sandbox's running execs and its last finished ones, oldest first."""
        return [
            ExecSummary(p.id, p.request.argv, p.result.started_at, p.result if p.done else None)
            for p in self._sandbox(sandbox_id).exec_processes()
        ]

    def exec_events(self, sandbox_id: str, exec_id: str, stdout_from: int = 0,
                    stderr_from: int = 0, poll: float | None = None,
                    ) -> Iterator[OutputEvent | None]:  # fmt: skip
        """The exec's output from these offsets on, as it comes, until it ended."""
        process = self._sandbox(sandbox_id).exec_process(exec_id)
        return process.output.follow(stdout_from, stderr_from, poll)

    def exec_offsets(self, sandbox_id: str, exec_id: str) -> dict[str, int]:
        """How many bytes of stdout and stderr the exec has written so far."""
        return self._sandbox(sandbox_id).exec_process(exec_id).output.ends()

    def exec_wait(self, sandbox_id: str, exec_id: str,
                  timeout: float | None = None) -> ExecResult | None:  # fmt: skip
        """The exec's result once it ended (None if ``timeout`` passed first)."""
        return self._sandbox(sandbox_id).exec_process(exec_id).wait(timeout)

    def exec_write(self, sandbox_id: str, exec_id: str, data: bytes) -> None:
        """Write to the exec's stdin (started with ``stdin=True``)."""
        self._sandbox(sandbox_id).exec_process(exec_id).write_stdin(data)

    def exec_close_stdin(self, sandbox_id: str, exec_id: str) -> None:
        """Close the exec's stdin."""
        self._sandbox(sandbox_id).exec_process(exec_id).close_stdin()

    def exec_kill(self, sandbox_id: str, exec_id: str) -> None:
        """Kill the exec's process group (it ends with 137)."""
        self._sandbox(sandbox_id).exec_process(exec_id).kill()

    def exec(self, sandbox_id: str, request: ExecRequest,
             stdin: bytes | None = None) -> ExecResult:  # fmt: skip
        """Run to the end and return the result with the output kept (see ``OutputLog``)."""
        if stdin is not None:
            request = dataclasses.replace(request, stdin=True)
        process = self._sandbox(sandbox_id).start_exec(request)
        if stdin is not None:
            with contextlib.suppress(SandpoolError):
                process.write_stdin(stdin)
            process.close_stdin()
        result = process.wait()
        assert result is not None
        result.stdout, result.stderr = process.output.contents()
        return result

    def stream(self, sandbox_id: str, request: ExecRequest) -> Iterator[OutputEvent | ExecResult]:
        """Start an exec and yield its output events as they come, then its result."""
        process = self._sandbox(sandbox_id).start_exec(request)
        for event in process.output.follow():
            if event is not None:
                yield event
        result = process.wait()
        assert result is not None
        yield result

    # ---- files ------------------------------------------------------------------------------

    def _files_of(self, sandbox_id: str) -> LiveSandbox:
        sandbox = self._sandbox(sandbox_id)
        sandbox.require(SandboxState.RUNNING, what="use the files of")
        sandbox.touch()
        return sandbox

    def write_file(self, sandbox_id: str, path: str, source: Source, mode: int = 0o644) -> int:
        """Write a file in the sandbox, streamed; the byte count."""
        sandbox = self._files_of(sandbox_id)
        try:
            return sandbox.files.write(path, source, mode)
        finally:
            sandbox.touch()

    def read_file(self, sandbox_id: str, path: str) -> Iterator[bytes]:
        """A file of the sandbox, streamed in chunks."""
        sandbox = self._files_of(sandbox_id)
        for chunk in sandbox.files.read(path):
            sandbox.touch()
            yield chunk

    def list_files(self, sandbox_id: str, path: str) -> builtins.list[FileEntry]:
        """A directory's entries."""
        return self._files_of(sandbox_id).files.list(path)

    def stat_file(self, sandbox_id: str, path: str) -> FileEntry:
        """One path's entry (symlinks not followed)."""
        return self._files_of(sandbox_id).files.stat(path)

    def make_dir(self, sandbox_id: str, path: str, parents: bool = False) -> None:
        """Make a directory."""
        self._files_of(sandbox_id).files.mkdir(path, parents)

    def remove_file(self, sandbox_id: str, path: str, recursive: bool = False) -> None:
        """Remove a file or directory."""
        self._files_of(sandbox_id).files.remove(path, recursive)

    def rename_file(self, sandbox_id: str, source: str, destination: str) -> None:
        """Move a file or directory."""
        self._files_of(sandbox_id).files.rename(source, destination)

    # ---- adoption ---------------------------------------------------------------------------

    def adopt(self) -> tuple[builtins.list[str], builtins.list[str]]:
        """Take over dead owners' sandboxes that still run; remove those that cannot be
        adopted. The ids adopted and removed."""
        adopted: builtins.list[str] = []
        removed: builtins.list[str] = []
        me = os.getpid()
        for directory, record in load_records(self.state_dir):
            loaded = load_sandbox_file(directory)
            if loaded is None or record is None or record.owner_alive():
                continue  # not a sandbox, being created, or a live process's
            info, pid, start = loaded
            if self._adopt_one(directory, record, info, pid, start, me):
                adopted.append(info.id)
            else:
                remove_sandbox(record, directory, self.state_dir)
                removed.append(info.id)
        return adopted, removed

    def _adopt_one(self, directory: Path, record: ContainerRecord, info: SandboxInfo,
                   pid: int, start: int, me: int) -> bool:  # fmt: skip
        if info.state not in (SandboxState.RUNNING, SandboxState.PAUSED):
            return False
        if not pid_alive(pid, start):
            return False
        try:
            runtime = self.runtime_for(info.pool)
            limit = parse_size(self.config.pool(info.pool).max_output)
        except SandpoolError:
            return False
        if record.runtime_args != tuple(runtime.global_args()):
            return False  # the pool's runtime root or flags changed: it cannot be reached
        owned = dataclasses.replace(record, owner_pid=me, owner_start=process_start_time(me) or 0)
        owned.save(directory)
        info.last_activity, info.ports = time.time(), ()  # the dead owner's forwards went
        network = reattach_network(info, directory, self.state_dir, self.config.pool(info.pool))
        sandbox = LiveSandbox(info, runtime, directory, self.state_dir, pid, start, limit,
                              network, stubs=started_slot(runtime, info.id, directory))  # fmt: skip
        sandbox.save()
        self._register(sandbox)
        log.info("adopted sandbox %s (owner %d gone)", info.id, record.owner_pid)
        return True


def _check_durations(request: SandboxRequest) -> None:
    for name, value in (("ttl", request.ttl), ("idle_timeout", request.idle_timeout)):
        if value is not None and not value > 0:
            raise ContainerStartFailed(f"sandbox {name} must be a positive number of seconds, "
                                       f"got {value!r}")  # fmt: skip
