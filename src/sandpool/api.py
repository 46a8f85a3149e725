"""The Python API that ``sandpool run`` is a thin layer over.

    with Sandpool.from_config("pools.yaml") as sp:
        result = sp.run("default", ["python3", "-c", "print(42)"])
        print(result.exit_code, result.stdout)

A ``Sandpool`` is safe to share between threads: each ``run`` is independent and blocks its
calling thread; call it from a thread pool (or ``asyncio.to_thread``) for concurrency. Starts
in flight are capped per pool (2 per CPU for runc, 4 per CPU for gVisor, at most 32, or the
pool's ``containerStartConcurrency``); containers that have started do not count.

A ``Sandpool`` keeps the parent cgroups of finished containers warm for the next ones
(``worker.slots``), and their size-limited disks (``worker.disk``); ``close`` (or leaving the
``with`` block) removes them, as does the exit of the process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import ContainerNotFound
from sandpool.images import ImageStore, choose_reference
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.factory import create_runtime
from sandpool.runtime.runner import FileArg
from sandpool.runtime.spec import BindMount
from sandpool.sandbox import Sandbox, SandboxManager, SandboxRequest, SandboxState
from sandpool.sandbox.warm import WarmStats
from sandpool.worker.container import START_TIMEOUT, ContainerRun, Stdio
from sandpool.worker.disk import DiskSlots
from sandpool.worker.gpus import DEV_DIR
from sandpool.worker.handle import RunHandle
from sandpool.worker.ownership import owner_tag
from sandpool.worker.records import ContainerRecord, containers_dir, load_records
from sandpool.worker.recovery import collect_garbage, stop_container
from sandpool.worker.request import RunRequest, RunResult
from sandpool.worker.request_checks import refuse_unpassable_text
from sandpool.worker.slots import CgroupSlots

__all__ = ["Sandpool", "start_concurrency"]

MAX_START_CONCURRENCY = 32


def start_concurrency(pool: ResolvedPool, cpus: int | None = None) -> int:
    """How many starts of ``pool`` may be in flight at once."""
    if pool.container_start_concurrency:
        return pool.container_start_concurrency
    per_cpu = 4 if pool.is_gvisor else 2
    return min(MAX_START_CONCURRENCY, per_cpu * (cpus or os.cpu_count() or 1))


class Sandpool:
    """Runs containers for every pool of one resolved configuration."""

    def __init__(self, config: ResolvedConfig, *, images: ImageStore | None = None,
                 start_timeout: float = START_TIMEOUT, gpu_dev_dir: Path = DEV_DIR,
                 ) -> None:  # fmt: skip
        self.config = config
        self.gpu_dev_dir = gpu_dev_dir  # where the host's /dev/nvidia<N> are (tests: a stand-in)
        self.state_dir = Path(config.state_dir)
        self.images = images or ImageStore(self.state_dir)
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._runtimes: dict[str, ContainerRuntime] = {}
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        warm = max((start_concurrency(p) for p in config.pools.values()), default=0)
        self._cgroup_slots = CgroupSlots(config.cgroup_parent, warm, owner_tag(self.state_dir))
        self._disk_slots = DiskSlots(self.state_dir, warm)
        self._sandboxes: SandboxManager | None = None

    @classmethod
    def from_config(
        cls, path: str | Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Sandpool:
        """Load the configuration the way the CLI does (files, $SANDPOOL_CONFIG, env)."""
        from sandpool.config.loader import LoadedConfig

        paths = [path] if isinstance(path, str) else list(path or [])
        return cls(LoadedConfig.load(paths, environ).resolved)

    def __enter__(self) -> Sandpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self, *, keep_sandboxes: bool = False) -> None:
        """Forget cached runtimes and remove the warm cgroups (running containers belong to
        their ``run`` calls; they remove their cgroups when they end). The sandboxes are
        terminated, or with ``keep_sandboxes`` left running for a later ``adopt``."""
        self.close_sandboxes(terminate=not keep_sandboxes)
        with self._lock:
            self._runtimes.clear()
        self._cgroup_slots.close()
        self._disk_slots.close()

    def holds_sandboxes(self) -> bool:
        """Whether any sandbox of this process is still alive (not terminated)."""
        with self._lock:
            sandboxes = self._sandboxes
        return sandboxes is not None and any(
            info.state != SandboxState.TERMINATED for info in sandboxes.list()
        )

    def close_sandboxes(self, *, terminate: bool = True) -> None:
        """Terminate this process's sandboxes (their execs end 137), or leave them running
        for a later ``adopt`` (``terminate=False``); a later use of ``sandboxes`` starts
        afresh."""
        with self._lock:
            sandboxes, self._sandboxes = self._sandboxes, None
        if sandboxes is not None:
            sandboxes.close(terminate=terminate)

    def runtime(self, pool: str) -> ContainerRuntime:
        """The pool's container runtime, created (and checked) once."""
        with self._lock:
            if pool not in self._runtimes:
                resolved = self.config.pool(pool)
                self._runtimes[pool] = create_runtime(resolved, self.config)
                self._gates[pool] = threading.BoundedSemaphore(start_concurrency(resolved))
            return self._runtimes[pool]

    def run(self, pool: str, command: Sequence[str] = (), *, image: str | None = None,
            cpu: float | None = None, memory: str | None = None, pids: int | None = None,
            timeout: float | None = None, env: Sequence[str] = (), workdir: str | None = None,
            gpus: int = 0, mounts: Sequence[BindMount] = (), stdin: FileArg = None,
            stdout: FileArg = None, stderr: FileArg = None, capture: bool = True,
            disk: str | None = None, max_output: str | None = None,
            network: str | None = None, allow: Sequence[str] | None = None,
            ) -> RunResult:  # fmt: skip
        """Run ``command`` in a new container of ``pool`` and wait for it to end.

        With ``capture`` (the default) stdout and stderr are returned in the result; pass
        ``capture=False`` with file descriptors in ``stdout``/``stderr`` to stream instead.
        ``disk`` limits the writable layer (e.g. ``"256Mi"``); ``max_output`` caps what is
        captured of each stream (the rest is dropped and counted in the result). ``network``
        (``none``, ``allow``, ``open``) and ``allow`` (CIDR, HOST:PORT, DOMAIN entries) set
        its network policy (default: the pool's ``containerDefaults``). Once ``start_warm``
        ran, a run that matches its pool's ``warmPool`` runs in a warm container
        (``sandbox.warm_run``), with the same guarantees and result.
        """
        request = RunRequest(tuple(command), image, cpu, memory, pids, timeout, tuple(env),
                             workdir, gpus, tuple(mounts), disk, max_output, network,
                             None if allow is None else tuple(allow))  # fmt: skip
        return self.run_request(pool, request, Stdio(stdin, stdout, stderr, capture=capture))

    def run_request(self, pool: str, request: RunRequest, stdio: Stdio, *,
                    on_container: Callable[[RunHandle], None] | None = None,
                    ) -> RunResult:  # fmt: skip
        """``run`` with a prepared request; ``on_container`` gets the run's handle (a cold
        ``ContainerRun`` or a ``WarmRun``) before its command starts, to ``stop()`` it from
        another thread."""
        refuse_unpassable_text(request)
        runtime = self.runtime(pool)
        image = self.images.get(choose_reference(request.image, self.config.default_image))
        if (sandboxes := self._warm_sandboxes()) is not None:
            from sandpool.sandbox.warm_run import run_on_warm

            warm = run_on_warm(sandboxes, self.config.pool(pool), image, request, stdio,
                               self.state_dir, on_container)  # fmt: skip
            if warm is not None:  # a warm container matched (``sandbox.warm_run``)
                return warm
        gate = self._gates[pool]
        gate.acquire()
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                gate.release()

        try:  # whatever raises from here on, the permit goes back
            container = ContainerRun(self.config.pool(pool), runtime, image, request,
                                     state_dir=self.state_dir,
                                     cgroup_parent=self.config.cgroup_parent,
                                     start_timeout=self.start_timeout,
                                     cgroup_slots=self._cgroup_slots,
                                     disk_slots=self._disk_slots,
                                     gpu_dev_dir=self.gpu_dev_dir,
                                     userns_base=self.config.user_namespace_base)  # fmt: skip
            self._announce(container, on_container)
            return container.run(stdio, on_started=release)
        finally:
            release()

    def _announce(self, container: ContainerRun,
                  on_container: Callable[[RunHandle], None] | None) -> None:  # fmt: skip
        """Hand ``container`` to ``on_container``; if that raises, its cgroup slot goes back
        (``run`` would have done it, but it will not be called)."""
        if on_container is None:
            return
        try:
            on_container(container)
        except BaseException:
            self._cgroup_slots.give_back(container.cgroup)
            raise

    @property
    def sandboxes(self) -> SandboxManager:
        """This process's sandboxes, by id (``sandpool.sandbox``); ``close`` terminates them."""
        with self._lock:
            if self._sandboxes is None:
                self._sandboxes = SandboxManager(self.config, self.images, self.runtime,
                                                 start_timeout=self.start_timeout,
                                                 start_gate=self._start_gate)  # fmt: skip
            return self._sandboxes

    def start_warm(self) -> None:
        """Start keeping every pool's ``warmPool`` filled (in the background); from then on
        matching runs and sandbox creates claim warm containers. A first sandbox create
        starts them too; a plain ``run`` does not (a one-shot CLI process would only pay)."""
        self.sandboxes.start_warm()

    def warm_stats(self) -> list[WarmStats]:
        """Each warm pool's counters (size, ready, claims, misses, refill time, …)."""
        return self.sandboxes.warm_stats()

    def _warm_sandboxes(self) -> SandboxManager | None:
        """The sandboxes, if their warm pools run (``start_warm``)."""
        with self._lock:
            sandboxes = self._sandboxes
        return sandboxes if sandboxes is not None and sandboxes.warm_started() else None

    def _start_gate(self, pool: str) -> threading.BoundedSemaphore:
        """The pool's cap on starts in flight (a context manager), as ``run`` uses it."""
        self.runtime(pool)  # creates the gate with the runtime
        return self._gates[pool]

    def create_sandbox(self, pool: str, image: str | None = None, *, cpu: float | None = None,
                       memory: str | None = None, pids: int | None = None,
                       disk: str | None = None, env: Sequence[str] = (),
                       workdir: str | None = None, ttl: float | None = None,
                       idle_timeout: float | None = None,
                       labels: Mapping[str, str] | None = None, network: str | None = None,
                       allow: Sequence[str] | None = None) -> Sandbox:  # fmt: skip
        """Start a long-lived sandbox of ``pool`` and return its handle (a context manager
        that terminates it). ``ttl`` counts from ready; ``idle_timeout`` from the last exec
        or file operation; ``network``/``allow`` as for ``run`` (``Sandbox.set_network``
        changes them later); None takes the pool's ``containerDefaults``."""
        request = SandboxRequest(pool, image, cpu, memory, pids, disk, tuple(env), workdir,
                                 ttl, idle_timeout, tuple((labels or {}).items()), network,
                                 None if allow is None else tuple(allow))  # fmt: skip
        info = self.sandboxes.create(request)
        return Sandbox(self.sandboxes, info.id)

    def ps(self) -> list[ContainerRecord]:
        """The containers sandpool is running now (from every process sharing the state dir)."""
        return [record for _, record in load_records(self.state_dir) if record is not None]

    def kill(self, container_id: str) -> None:
        """Stop one container; its owning ``run`` sees it end with 137."""
        for directory, record in load_records(self.state_dir):
            if record is not None and record.id == container_id:
                stop_container(record, directory)
                return
        raise ContainerNotFound(f"no sandpool container with id '{container_id}'",
                                hint="`sandpool ps` lists them")  # fmt: skip

    def set_network(self, container_id: str, network: str, allow: Sequence[str] = ()) -> None:
        """Change the network policy of a running container (started with ``allow`` or
        ``open``; it cannot go to ``none``), from any process: new rules apply at once."""
        from sandpool.network.attach import change_policy
        from sandpool.network.run import run_policy

        policy = run_policy(RunRequest(network=network, allow=tuple(allow)),
                            self.config.pool(self._pool_of(container_id)))  # fmt: skip
        change_policy(containers_dir(self.state_dir) / container_id, policy)

    def _pool_of(self, container_id: str) -> str:
        for _, record in load_records(self.state_dir):
            if record is not None and record.id == container_id:
                return record.pool
        raise ContainerNotFound(f"no sandpool container with id '{container_id}'",
                                hint="`sandpool ps` lists them")  # fmt: skip

    def gc(self) -> list[str]:
        """Remove what crashed or killed sandpool processes left behind; the ids removed."""
        return collect_garbage(self.config)
