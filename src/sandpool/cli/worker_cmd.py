"""``sandpool worker --pool P [--gateway URL]``: the process a worker Job runs.

It loads its pool's configuration (from the env its Job sets, else ``-c`` / the embedded
default) and checks the pool's container runtime. Without ``--gateway`` it then serves
``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: the runtime check
passed) on ``--health-port`` until SIGTERM or SIGINT, then exits 0. With ``--gateway`` (and
the worker token in ``$SANDPOOL_WORKER_TOKEN``) it is a worker of the pool behind that
gateway (``sandpool.dispatch.worker_main``): the same probes on its internal address, and
the sandboxes the gateway places on it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import click

from sandpool.cli.options import Number, config_option
from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.controller.worker_env import (
    HEALTH_PATH,
    HEALTH_PORT,
    POOL_ENV,
    READY_PATH,
    decode_resolved_config,
)
from sandpool.errors import SandpoolError

__all__ = ["RuntimeCheck", "check_pool_runtime", "worker", "worker_config"]

log = logging.getLogger("sandpool.worker")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class RuntimeCheck:
    """The outcome of checking one pool's container runtime on this host."""

    pool: str
    container_runtime: str
    binary: str
    path: str | None
    ok: bool
    version: str | None = None
    error: str | None = None

    def summary(self) -> str:
        """One log line."""
        head = f"pool={self.pool} containerRuntime={self.container_runtime}"
        if self.ok:
            return f"{head} ok: {self.path}: {self.version}"
        return f"{head} FAILED: {self.error}"


def check_pool_runtime(pool: ResolvedPool, config: ResolvedConfig) -> RuntimeCheck:
    """The pool's runtime checked as ``sandpool doctor`` does (binary, version, gVisor platform,
    kvm, gvisorRoot), without doctor's smoke test."""
    from sandpool.doctor.runtime_checks import runtime_checks

    found = runtime_checks(pool, config)
    binary = config.runsc_path if pool.is_gvisor else config.runc_path
    name = "runsc" if pool.is_gvisor else "runc"
    errors = "; ".join(check.message for check in found.checks if check.failed)
    version = f"{name} version {found.version}" if found.version else None
    return RuntimeCheck(pool.name, pool.container_runtime, binary, found.path, not errors,
                        version, errors or None)  # fmt: skip


def worker_config(
    config_files: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> tuple[ResolvedConfig, str]:
    """The configuration a Job passed in env, else the one ``-c`` / the defaults name."""
    environ = os.environ if environ is None else environ
    from_env = decode_resolved_config(environ)
    if from_env is not None:
        return from_env, "the worker Job's environment"
    from sandpool.config import LoadedConfig

    loaded = LoadedConfig.load(config_files, environ)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.resolved, " + ".join(loaded.sources)


def _handler(check: RuntimeCheck) -> type[BaseHTTPRequestHandler]:
    """Request handler answering the two probes with the runtime check as JSON."""
    routes = {
        HEALTH_PATH: (200, {"status": "ok", "pool": check.pool}),
        READY_PATH: (200 if check.ok else 503, {"ready": check.ok, "runtime": asdict(check)}),
    }

    class ProbeHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, {"error": "not found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request lines: kubelet probes every few seconds."""

    return ProbeHandler


def serve_until_signal(check: RuntimeCheck, host: str, port: int) -> None:
    """Answer the probes on ``host:port`` until SIGTERM or SIGINT arrives."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(check))
    except OSError as exc:
        raise SandpoolError(f"cannot serve health probes on {host}:{port}: {exc}") from exc
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, name="probes", daemon=True)
    thread.start()
    log.info("serving %s and %s on %s:%d", HEALTH_PATH, READY_PATH, host, server.server_port)
    while not stop.wait(0.5):
        pass
    log.info("%s received: stopping", received[0] if received else "signal")
    server.shutdown()
    server.server_close()


@click.command()
@click.option("--pool", required=True, envvar=POOL_ENV, help="The pool this worker serves.")
@config_option
@click.option("--health-host", default="0.0.0.0", show_default=True, help="Probe address.")
@click.option("--health-port", default=HEALTH_PORT, show_default=True, help="Probe port.",
              type=Number((1, 65535), "", whole=True))  # fmt: skip
@click.option(
    "--gateway",
    default=None,
    envvar="SANDPOOL_GATEWAY",
    metavar="URL",
    help="Serve this gateway's requests for POOL (token: $SANDPOOL_WORKER_TOKEN).",
)
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="With --gateway: the internal endpoint (default: the probe address).",
)
@click.option(
    "--advertise",
    default=None,
    metavar="URL",
    help="With --gateway: the URL the gateway reaches the endpoint at.",
)
@click.option(
    "--cpu",
    "cpu",
    default=None,
    type=Number((0.001, 1_000_000), ""),
    help="With --gateway: CPUs offered (default: the host's).",
)
@click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help="With --gateway: memory offered (default: the host's).",
)
@click.option("--sandboxes", default=64, show_default=True,
              type=Number((1, 100_000), "", whole=True),
              help="With --gateway: sandboxes held at once, at most.")  # fmt: skip
def worker(pool: str, config_files: tuple[str, ...], health_host: str, health_port: int,
           gateway: str | None, listen: str | None, advertise: str | None, cpu: float | None,
           memory: str | None, sandboxes: int) -> None:  # fmt: skip
    """Run the worker of POOL: check its container runtime, answer probes until SIGTERM;
    with --gateway, run the sandboxes that gateway places on it."""
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    config, source = worker_config(config_files)
    resolved = config.pool(pool)
    log.info("pool %s: configuration from %s", pool, source)
    check = check_pool_runtime(resolved, config)
    (log.info if check.ok else log.error)("runtime check: %s", check.summary())
    if gateway is None:
        serve_until_signal(check, health_host, health_port)
        return
    from sandpool.cli.worker_gateway import gateway_options
    from sandpool.dispatch.worker_main import serve_worker

    options = gateway_options(gateway, listen or f"{health_host}:{health_port}", advertise,
                              cpu, memory, sandboxes, pool, config_files)  # fmt: skip
    serve_worker(config, pool, check.ok, check.error, options)
