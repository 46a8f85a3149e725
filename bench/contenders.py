"""The contenders: each one runs ``true`` in a fresh container and returns the wall time.

What each one's time includes:

- ``api-*``: ``Sandpool.run(pool, ["true"])`` in this (warm) process, request to result: image
  cache lookup, container dir + record, overlay mount, parent cgroup, spec, ``runc/runsc run``,
  exit classification and the whole clean-up (delete, unmount, cgroup and dir removal).
- ``raw-*``: ``subprocess.run`` of the exact argv sandpool uses (``runtime.argv("run", ...)``,
  same ``--root``/``--platform``/``--network``/``--log`` flags) on one bundle prepared once
  (overlay mounted once, spec from sandpool's ``build_spec``, parent cgroup created once).
  runc removes its container when ``run`` returns; for runsc a ``delete --force`` runs after
  the timer stops when state was left.
- ``cli-*``: ``sandpool run -c CFG --pool P --image builtin:busybox -- true`` exec'd directly
  (no shell), fork to exit, with no ``sandpool serve`` listening: interpreter start, imports,
  config, then all of ``api-*``; byte-code is cached (PYTHONPYCACHEPREFIX in the workspace),
  as for an installed package.
- ``served-*``: the same command line with a ``sandpool serve`` (started by the bench,
  already warm) listening: interpreter start, the thin client's imports, handing the command
  line and fds 0-2 to the server, the server's parse and all of ``api-*`` there, the exit
  status back.
- ``podman``: ``podman run --rm --runtime runc --network none --ulimit ...`` of the same
  busybox rootfs imported into a podman store of the bench's own.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.fixtures import RawBundle, Workspace
from sandpool.api import Sandpool

__all__ = ["Contender", "api", "cli", "podman", "raw"]

Contender = Callable[[], float]
SANDPOOL_BIN = Path(sys.executable).with_name("sandpool")


def _timed(argv: list[str], *, check: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, start_new_session=True, check=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}… exited {proc.returncode}: {proc.stderr!r}")
    return elapsed


def api(sp: Sandpool, pool: str, image: str) -> Contender:
    """``Sandpool.run`` of ``true`` in ``pool`` from this process."""

    def run() -> float:
        start = time.perf_counter()
        result = sp.run(pool, ["true"], image=image)
        elapsed = time.perf_counter() - start
        if result.exit_code != 0:
            raise RuntimeError(f"sandpool run exited {result.exit_code}: {result.error}")
        return elapsed

    return run


def raw(bundles: list[RawBundle]) -> Contender:
    """The runtime's own ``run`` of a prepared bundle (one free bundle per concurrent run)."""
    runtime = bundles[0].runtime
    state_root = Path(runtime.root)
    free: queue.SimpleQueue[RawBundle] = queue.SimpleQueue()
    for bundle in bundles:
        free.put(bundle)

    def run() -> float:
        container_id = "bench-" + uuid.uuid4().hex[:12]
        bundle = free.get()
        try:
            elapsed = _timed(bundle.argv(container_id))
        finally:
            free.put(bundle)
        if runtime.name == "gvisor" and (state_root / container_id).exists():
            runtime.delete(container_id, force=True)  # outside the timer
        for leftover in state_root.glob(f"{container_id}*"):
            raise RuntimeError(f"raw {runtime.name} left {leftover}")
        return elapsed

    return run


def cli_env(pycache: Path, socket: Path) -> dict[str, str]:
    """The environment of ``sandpool run``: no SANDPOOL_* overrides but the ``serve`` socket
    (a path nobody listens on means in-process), and byte-code cached (in the workspace) as
    an installed package has it, even where PYTHONDONTWRITEBYTECODE is set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDPOOL_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["SANDPOOL_SOCKET"] = str(socket)
    return env


def cli_argv(config: Path, pool: str, image: str) -> list[str]:
    """``sandpool run`` of ``true``, as the cli contenders run it."""
    return [str(SANDPOOL_BIN), "run", "-c", str(config), "--pool", pool, "--image", image,
            "--", "true"]  # fmt: skip


def cli(config: Path, pool: str, image: str, socket: Path) -> Contender:
    """``sandpool run`` as a fresh process (the warm-up runs fill the byte-code cache); served
    by a ``sandpool serve`` if one listens on ``socket``, else in-process."""
    argv = cli_argv(config, pool, image)
    env = cli_env(config.parent / "pycache", socket)

    def run() -> float:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, check=False)  # fmt: skip
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"sandpool run exited {proc.returncode}: {proc.stderr!r}")
        return elapsed

    return run


def podman(ws: Workspace) -> Contender:
    """``podman run --rm`` of the imported busybox image."""
    argv = ws.podman_run_argv()
    return lambda: _timed(argv)


def cli_peak_rss_kb(config: Path, pool: str, image: str, socket: Path) -> int:
    """Peak RSS of one ``sandpool run`` process (the Python process; runc/runsc are smaller).

    Through GNU time (Debian ``time``): a child spawned from this process would count this
    (larger) process's pages in its peak, which survives exec."""
    argv = ["/usr/bin/time", "-f", "%M", *cli_argv(config, pool, image)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True,
                          env=cli_env(config.parent / "pycache", socket))  # fmt: skip
    return int(done.stderr.split()[-1])


IDLE_SCRIPT = """
import sys, time
from sandpool.api import Sandpool
sp = Sandpool.from_config(sys.argv[1])
for _ in range(int(sys.argv[4])):
    sp.run(sys.argv[2], ["true"], image=sys.argv[3])
print("ready", flush=True)
time.sleep(3600)
"""


def idle_rss_kb(config: Path, pool: str, image: str, runs: int = 20) -> dict[str, int]:
    """VmRSS and VmHWM of a long-running process holding a Sandpool, after ``runs`` runs."""
    argv = [sys.executable, "-c", IDLE_SCRIPT, str(config), pool, image, str(runs)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("idle process did not get ready")
        time.sleep(0.5)
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}
    finally:
        proc.kill()
        proc.wait()
