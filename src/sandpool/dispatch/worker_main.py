"""``sandpool worker --pool P --gateway URL``: a worker of one pool behind a gateway.

It removes what a previous worker process of its state dir left (``gc``: those sandboxes
were reported lost when its lease ran out), checks the pool's runtime, listens on its
internal address (probes, and the exec/file endpoints the gateway proxies to), starts
filling its pool's warm pool, registers with the gateway, and then heartbeats and pulls
requests (sandbox creates, one-shot runs) until SIGTERM or SIGINT. On the way out it stops
pulling, terminates its sandboxes and reports them ended.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import uvicorn

from sandpool.api import Sandpool
from sandpool.config.models import GatewayConfig
from sandpool.config.resolved import ResolvedConfig
from sandpool.dispatch.agent import GatewayLink, WorkerAgent
from sandpool.dispatch.models import Resources, WorkerSpec
from sandpool.dispatch.run_wire import request_from_wire, result_to_wire
from sandpool.dispatch.worker_api import create_worker_app
from sandpool.dispatch.worker_public import mount_public_api
from sandpool.errors import ConfigError, DispatchError
from sandpool.sandbox.manager import SandboxManager
from sandpool.service.dashboard.figures import SandboxCollector
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.server import bind
from sandpool.sizes import parse_size
from sandpool.worker.container import Stdio

__all__ = ["TOKEN_ENV", "WorkerOptions", "host_capacity", "one_shot_runner", "serve_worker",
           "worker_token"]  # fmt: skip

log = logging.getLogger("sandpool.worker")
TOKEN_ENV = "SANDPOOL_WORKER_TOKEN"


@dataclass(frozen=True)
class WorkerOptions:
    """How this worker reaches the gateway and what it offers."""

    gateway: str
    token: str
    host: str
    port: int
    advertise: str | None
    capacity: Resources
    priority: int = 0
    requires_pool_selector: bool = False


def worker_token(environ: dict[str, str] | None = None) -> str:
    """The worker token from ``$SANDPOOL_WORKER_TOKEN`` (ConfigError naming it if unset)."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    if len(token) < 16:
        raise ConfigError(f"{TOKEN_ENV} must hold the worker token (at least 16 characters)",
                          hint="set the same secret on the gateway and its workers")  # fmt: skip
    return token


def host_capacity(cpu: float | None, memory: int | None, sandboxes: int,
                  gpus: int = 0) -> Resources:  # fmt: skip
    """What the worker offers: the flags, else this host's CPUs and memory."""
    cores = cpu if cpu is not None else float(os.cpu_count() or 1)
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Resources(int(cores * 1000), memory, gpus, sandboxes)


def _address(options: WorkerOptions, port: int) -> str:
    if options.advertise:
        return options.advertise.rstrip("/")
    host = options.host
    if host in ("0.0.0.0", "::", ""):
        host = os.environ.get("POD_IP") or "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def serve_worker(config: ResolvedConfig, pool_name: str, runtime_ok: bool,
                 runtime_error: str | None, options: WorkerOptions) -> None:  # fmt: skip
    """Run the worker until SIGTERM/SIGINT (see the module docstring)."""
    pool = config.pool(pool_name)
    config = replace(config, pools={pool.name: pool})  # only its pool (warm pools too)
    sock = bind(options.host, options.port)
    spec = WorkerSpec(pool.name, _address(options, sock.getsockname()[1]), options.capacity,
                      gpu_type=pool.gpu_type, priority=options.priority,
                      requires_pool_selector=options.requires_pool_selector,
                      container_runtime=pool.container_runtime, runtime_ok=runtime_ok,
                      runtime_error=runtime_error)  # fmt: skip
    with Sandpool(config) as sandpool:
        removed = sandpool.gc()
        if removed:
            log.info("removed %d containers a previous worker left", len(removed))
        manager = sandpool.sandboxes
        manager.start_warm()
        agent = WorkerAgent(GatewayLink(options.gateway, options.token), manager, spec,
                            runner=one_shot_runner(sandpool))  # fmt: skip
        threads = _start(agent)
        metrics = worker_metrics(manager)
        app = create_worker_app(manager, options.token,
                                ready=lambda: runtime_ok and agent.registered.is_set(),
                                metrics=metrics)  # fmt: skip
        # the gateway bounds an upload by its own gateway.maxUploadSize; this is the backstop
        mount_public_api(app, manager, options.token, parse_size(GatewayConfig().max_upload_size),
                         metrics)  # fmt: skip
        log.info("serving the worker endpoint on %s", spec.address)
        server = uvicorn.Config(app, http="h11", loop="asyncio", lifespan="off",
                                access_log=False, log_config=None, server_header=False)  # fmt: skip
        # uvicorn raises the signal it stopped for again once done: let that find a handler
        # that ignores it, so the clean-up below runs and the worker exits 0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)
        try:
            uvicorn.Server(server).run(sockets=[sock])
        finally:
            _stop(agent, manager, threads)


def worker_metrics(manager: SandboxManager) -> ServiceMetrics:
    """The worker's /metrics: its sandboxes by pool and state (the dashboard's figures), its
    warm pools and the execs run here."""
    metrics = ServiceMetrics()
    metrics.watch(manager)
    metrics.registry.register(SandboxCollector(manager.list))
    return metrics


def one_shot_runner(sandpool: Sandpool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A run delivery's payload -> its result: ``Sandpool.run_request`` with the output
    captured and stdin fed from a file (a warm container when one matches)."""

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        pool, request, stdin = request_from_wire(payload)
        with tempfile.TemporaryFile() as feed:
            if stdin:
                feed.write(stdin)
                feed.seek(0)
            stdio = Stdio(feed if stdin else None, capture=True)
            return result_to_wire(sandpool.run_request(pool, request, stdio))

    return run


def _start(agent: WorkerAgent) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=agent.pull_loop, name="pull", daemon=True),
        threading.Thread(target=agent.heartbeats, name="heartbeat", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


def _stop(agent: WorkerAgent, manager: SandboxManager, threads: list[threading.Thread]) -> None:
    agent.close()
    manager.close(terminate=True)
    try:
        agent.heartbeat_once()  # report what ended
    except DispatchError as exc:
        log.warning("last heartbeat failed: %s", exc)
    agent.link.close()
    for thread in threads:
        thread.join(timeout=1)
