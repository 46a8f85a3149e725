"""A pool's container runtime on this host: binary and version, gVisor platform, kvm, state root.

``sandpool worker`` runs these same checks (without the smoke test) before it reports ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.doctor.host import ensure_writable_dir
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, fail, ok
from sandpool.errors import (
    ContainerRuntimeError,
    PlatformNotSupported,
    RuntimeCommandFailed,
    RuntimeNotAvailable,
)
from sandpool.runtime.factory import create_runtime, find_binary
from sandpool.runtime.probe import RunscInfo, check_platform, default_platform, probe_runsc
from sandpool.runtime.runner import run_command

__all__ = ["RuntimeFindings", "effective_platform", "runtime_checks"]

# The seed's last resort for a gVisor pool whose runsc is missing.
_FALLBACK = {"runsc": ", or fall back to containerRuntime: runc for this pool"}


@dataclass
class RuntimeFindings:
    """What the runtime checks found for one pool."""

    checks: list[Check] = field(default_factory=list)
    path: str | None = None
    version: str | None = None
    info: RunscInfo | None = None

    @property
    def ready(self) -> bool:
        """Whether no runtime check failed (the smoke test may run)."""
        return not any(check.failed for check in self.checks)


def effective_platform(pool: ResolvedPool, info: RunscInfo) -> str:
    """The configured gVisor platform, else the default this runsc gets (SPEC §1)."""
    return pool.gvisor_platform or default_platform(info)


def _creation_error(pool: ResolvedPool, config: ResolvedConfig) -> ContainerRuntimeError:
    """The factory's own error for this pool (its message is the seed's)."""
    try:
        create_runtime(pool, config)
    except ContainerRuntimeError as exc:
        return exc
    return RuntimeNotAvailable(f"cannot create the {pool.container_runtime} runtime")


def _runc_version(path: str) -> str:
    first = (run_command([path, "--version"], timeout=10).stdout.strip().splitlines() or [""])[0]
    return first.removeprefix("runc version ").strip() or "(unknown version)"


def _does_not_run(path: str, exc: ContainerRuntimeError) -> str:
    """``/usr/bin/runc --version exited 3: <last stderr line>``, or the error itself."""
    if isinstance(exc, RuntimeCommandFailed):
        tail = (exc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return f"{' '.join(exc.argv)} exited {exc.status}: {tail}"
    return f"{path} does not run: {exc}"


def _binary(pool: ResolvedPool, config: ResolvedConfig, found: RuntimeFindings) -> None:
    """The runtime binary is there and ``--version`` runs."""
    name, key = ("runsc", "runscPath") if pool.is_gvisor else ("runc", "runcPath")
    path = find_binary(config.runsc_path if pool.is_gvisor else config.runc_path)
    if path is None:
        error = _creation_error(pool, config)  # message and hint are the factory's
        fix = f"install the {name} package (in a worker image: `docker run IMAGE which {name}`)"
        fix += f", or set worker.{key}" + _FALLBACK.get(name, "")
        found.checks.append(fail(pool.name, "runtime", str(error), fix))
        return
    found.path = path
    try:
        found.info = probe_runsc(path) if pool.is_gvisor else None
        found.version = found.info.version if found.info else _runc_version(path)
    except ContainerRuntimeError as exc:
        fix = f"reinstall the {name} package, or point worker.{key} at a working {name}"
        found.checks.append(fail(pool.name, "runtime", _does_not_run(path, exc), fix))
        return
    found.checks.append(ok(pool.name, "runtime", f"{name} {found.version} at {path}"))


def _platform(pool: ResolvedPool, info: RunscInfo, probes: HostProbes) -> list[Check]:
    """The platform is one this runsc offers; kvm also needs a usable /dev/kvm."""
    platform = effective_platform(pool, info)
    try:
        check_platform(info, platform, kvm_device=probes.kvm_device)
    except PlatformNotSupported as exc:
        name = "platform" if platform not in info.platforms else "kvm"
        checks = [] if name == "platform" else [ok(pool.name, "platform", platform)]
        return [*checks, fail(pool.name, name, exc.message, exc.hint or "")]
    origin = "configured" if pool.gvisor_platform else "default"
    if not pool.gvisor_platform and platform != "systrap":
        origin += ": this runsc has no systrap"
    offered = ", ".join(info.platforms)
    checks = [ok(pool.name, "platform", f"{platform} ({origin}); runsc offers {offered}")]
    if platform == "kvm":
        checks.append(ok(pool.name, "kvm", f"{probes.kvm_device} is usable"))
    return checks


def _gvisor_root(pool: ResolvedPool) -> Check:
    """gvisorRoot is a writable directory; created when missing, as runsc would on first run."""
    root = Path(pool.gvisor_root)
    try:
        created = ensure_writable_dir(root)
    except OSError as exc:
        fix = (
            "make it writable for sandpool (in a worker pod: a writable volume such as an "
            "emptyDir), or set containerRuntimeConfig.gvisorRoot to a writable directory"
        )
        return fail(pool.name, "gvisorRoot", f"{root} is not writable: {exc.strerror or exc}", fix)
    return ok(pool.name, "gvisorRoot", f"{root} writable" + (" (created it)" if created else ""))


def runtime_checks(
    pool: ResolvedPool, config: ResolvedConfig, probes: HostProbes | None = None
) -> RuntimeFindings:
    """Binary and version; for gVisor also platform, kvm and the state root."""
    probes = probes or HostProbes()
    found = RuntimeFindings()
    _binary(pool, config, found)
    if found.info is not None:
        found.checks += _platform(pool, found.info, probes)
        found.checks.append(_gvisor_root(pool))
    return found
