"""The smoke test: start ``true`` in a real container of the pool, under a time limit.

It runs through the worker's own ``ContainerRun`` (overlay, parent cgroup, runtime flags), on a
busybox rootfs built in a scratch directory under ``worker.stateDir``; ``ContainerRun`` removes
the container, its mount, cgroup and directory whatever happens, and the scratch directory is
removed here, so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.doctor.report import Check, fail, ok
from sandpool.errors import RuntimeTimeout, SandpoolError
from sandpool.images.busybox import build_busybox_rootfs
from sandpool.runtime.base import ContainerRuntime
from sandpool.runtime.factory import create_runtime
from sandpool.worker.container import ContainerRun, Stdio
from sandpool.worker.request import RunRequest, RunResult

__all__ = ["SmokeImage", "smoke_test"]

RUN_TIMEOUT_FACTOR = 2  # the run's time limit, in start timeouts


@dataclass(frozen=True)
class SmokeImage:
    """The busybox rootfs as an image for ``ContainerRun`` (``worker.request.ImageLike``)."""

    rootfs: Path
    reference: str = "busybox (doctor smoke test)"
    env: tuple[str, ...] = ("PATH=/bin",)
    working_dir: str = "/"
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("true",)


def _describe(runtime: ContainerRuntime) -> str:
    return f"{runtime.name}, platform {runtime.platform}" if runtime.platform else runtime.name


def _hang_fix(pool: ResolvedPool, runtime: ContainerRuntime) -> str:
    if runtime.platform == "kvm":
        return (
            "runsc --platform=kvm hangs on this host; use systrap or ptrace: set pool "
            f"{pool.name}'s containerRuntimeConfig.gvisorPlatform to ptrace, or to systrap "
            "with runsc release-20230227 or later"
        )
    return f"see {runtime.root} and the runtime log; try the ptrace platform to rule out the host"


def _run_true(
    pool: ResolvedPool, config: ResolvedConfig, runtime: ContainerRuntime, timeout: float
) -> RunResult:
    """Build the rootfs in a scratch directory, run ``true``, remove the scratch directory."""
    state_dir = Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".doctor-", dir=state_dir))
    try:
        image = SmokeImage(build_busybox_rootfs(scratch / "rootfs"))
        # The run's own limit well past the start's: both count from about the same moment, so
        # with equal ones a loaded host could end a start that hangs as a timed-out run.
        request = RunRequest(command=("true",), timeout=timeout * RUN_TIMEOUT_FACTOR)
        container = ContainerRun(
            pool,
            runtime,
            image,
            request,
            state_dir=state_dir,
            cgroup_parent=config.cgroup_parent,
            start_timeout=timeout,
            userns_base=config.user_namespace_base,
        )
        try:
            return container.run(Stdio(capture=True))
        finally:
            _remove_runtime_leftovers(runtime, container.id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_runtime_leftovers(runtime: ContainerRuntime, container_id: str) -> None:
    """Files the runtime keeps in its root for a container that never started.

    runsc leaves ``<root>/<id>_sandbox:<id>.lock`` behind when a start hangs (kvm here) and is
    killed; ``ContainerRun.cleanup`` does not remove it (yet), so the doctor does.
    """
    for leftover in Path(runtime.root).glob(f"{container_id}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def smoke_test(pool: ResolvedPool, config: ResolvedConfig, timeout: float) -> Check:
    """Start ``true`` in a container of ``pool``: ok if it exits 0 within ``timeout`` seconds."""
    if os.geteuid() != 0:
        return fail(
            pool.name,
            "smoke",
            "not run: containers need root (namespaces, mounts, cgroups)",
            "run sandpool doctor as root (worker pods run privileged)",
        )
    try:
        runtime = create_runtime(pool, config)
    except SandpoolError as exc:
        return fail(pool.name, "smoke", f"not run: {exc}", "fix the runtime checks above")
    try:
        result = _run_true(pool, config, runtime, timeout)
    except RuntimeTimeout:
        what = f"`true` did not start within {timeout:g}s ({_describe(runtime)})"
        return fail(pool.name, "smoke", what, _hang_fix(pool, runtime))
    except (SandpoolError, OSError) as exc:
        fix = f"run `sandpool run --pool {pool.name} -- true` to see the full error"
        return fail(pool.name, "smoke", f"`true` could not run: {exc}", fix)
    if result.timed_out:  # it started, then hung: what a start that hangs does on some hosts
        what = f"`true` did not finish within {timeout * RUN_TIMEOUT_FACTOR:g}s"
        return fail(pool.name, "smoke", f"{what} ({_describe(runtime)})", _hang_fix(pool, runtime))
    if result.exit_code != 0:
        stderr = (result.stderr or b"").decode(errors="replace").strip()
        detail = result.error or stderr or "no output"
        return fail(
            pool.name,
            "smoke",
            f"`true` exited {result.exit_code}: {detail}",
            f"run `sandpool run --pool {pool.name} -- true` to see the full error",
        )
    took = f"{result.start_latency_ms:.0f} ms" if result.start_latency_ms else "started"
    return ok(pool.name, "smoke", f"`true` ran and exited 0 ({_describe(runtime)}; start {took})")
