"""A stand-in executor: runs nothing, answers like ``Sandpool.run`` (and can be slow, fail,
or be stopped), so that the service is tested without containers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandpool.config import LoadedConfig
from sandpool.service.runs import Stoppable
from sandpool.service.server import build_context
from sandpool.worker.request import RunRequest, RunResult

ADMIN_KEY = "test-admin-key-0123456789"


class FakeHandle:
    """A container handle whose ``stop`` ends the fake run at once."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


class FakeExecutor:
    """Answers each run after ``delay`` seconds with ``exit_code`` (137 if stopped); echoes
    stdin on stdout; ``raises`` makes every run raise it instead."""

    def __init__(self, delay: float = 0.0, exit_code: int = 0,
                 raises: BaseException | None = None) -> None:  # fmt: skip
        self.delay, self.exit_code, self.raises = delay, exit_code, raises
        self.requests: list[tuple[str, RunRequest]] = []
        self.running = 0
        self.peak = 0
        self.closed = False
        self._lock = threading.Lock()

    def run(self, pool: str, request: RunRequest, stdin: bytes | None,
            on_container: Callable[[Stoppable], None]) -> RunResult:  # fmt: skip
        handle = FakeHandle()
        on_container(handle)
        with self._lock:
            self.requests.append((pool, request))
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if self.raises is not None:
                raise self.raises
            start = time.time()
            stopped = handle.stopped.wait(self.delay)
            return RunResult(id="sp-fake", pool=pool, container_runtime="runc",
                             gvisor_platform=None, image=request.image or "builtin:default",
                             exit_code=137 if stopped else self.exit_code, started_at=start,
                             finished_at=time.time(), stdout=b"out:" + (stdin or b""),
                             stderr=b"\xff err")  # fmt: skip
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        self.closed = True


def write_config(directory: Path, gateway: str = "") -> Path:
    """A configuration with a state dir under ``directory`` and pools ``default`` (gVisor)
    and ``performance`` (runc)."""
    path = directory / "pools.yaml"
    path.write_text(f"worker:\n  stateDir: {directory / 'state'}\n  pools:\n"
                    f"    default:\n      containerRuntime: gvisor\n"
                    f"    performance:\n      containerRuntime: runc\n" + gateway)  # fmt: skip
    return path


def make_context(directory: Path, executor: Any, gateway: str = "") -> Any:
    """A ServiceContext over a fresh SQLite store and ``executor``."""
    loaded = LoadedConfig.load([str(write_config(directory, gateway))], environ={})
    return build_context(loaded, environ={"SANDPOOL_ADMIN_KEY": ADMIN_KEY}, executor=executor)
