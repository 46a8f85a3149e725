"""OCI runtime spec building: one container's ``config.json`` from a ``ContainerSpec``.

The spec never carries memory or pids limits: those sit on the sandpool-owned parent cgroup
(see ``worker.cgroups``), where OOM can be observed after the runtime has removed its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandpool.runtime.seccomp import seccomp_profile

__all__ = ["DEFAULT_CAPABILITIES", "DEFAULT_PATH", "BindMount", "ContainerSpec", "build_spec"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default set without NET_RAW and MKNOD: enough for ordinary programs, no raw packets.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class BindMount:
    """A host path made visible in the container (how files reach a gVisor container)."""

    source: str
    destination: str
    readonly: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """What one container should be; runtime-neutral."""

    args: tuple[str, ...]
    rootfs: Path
    cgroups_path: str
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    hostname: str = "sandbox"
    cpu: float | None = None
    gpus: int = 0
    gpu_devices: str = ""  # NVIDIA_VISIBLE_DEVICES: the leased indices ("0,2"), never "all"
    gpu_hook: str | None = None  # nvidia-container-runtime-hook, for runc GPU passthrough
    mounts: tuple[BindMount, ...] = ()
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    annotations: dict[str, str] = field(default_factory=dict)


def _with_path(env: tuple[str, ...]) -> list[str]:
    has_path = any(e.startswith("PATH=") for e in env)
    return [*([] if has_path else [DEFAULT_PATH]), *env]


def _process(spec: ContainerSpec) -> dict[str, Any]:
    caps = list(spec.capabilities)
    env = _with_path(spec.env)
    if spec.gpus and spec.gpu_devices:
        env.append(f"NVIDIA_VISIBLE_DEVICES={spec.gpu_devices}")
    return {
        "terminal": False,
        "user": {"uid": spec.uid, "gid": spec.gid},
        "args": list(spec.args),
        "env": env,
        "cwd": spec.cwd or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def _mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    tmpfs = ["nosuid", "strictatime", "mode=755", "size=65536k"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": tmpfs},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]  # fmt: skip
    for bind in spec.mounts:
        options = ["rbind", "nosuid", "nodev", "ro" if bind.readonly else "rw"]
        mounts.append(
            {"destination": bind.destination, "type": "bind", "source": bind.source,
             "options": options}
        )  # fmt: skip
    return mounts


def _linux(spec: ContainerSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.cpu:
        resources["cpu"] = {"quota": int(spec.cpu * CPU_PERIOD_US), "period": CPU_PERIOD_US}
    namespaces = ["pid", "network", "ipc", "uts", "mount"]
    return {
        "resources": resources,
        "seccomp": seccomp_profile(),  # runc only: gVisor drops it
        "cgroupsPath": spec.cgroups_path,
        "namespaces": [{"type": ns} for ns in namespaces],
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }


def build_spec(spec: ContainerSpec) -> dict[str, Any]:
    """The OCI ``config.json`` for ``spec``: new network namespace (no network), no new privileges,
    reduced capabilities, writable rootfs (the per-container overlay)."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": _process(spec),
        "root": {"path": str(spec.rootfs), "readonly": False},
        "hostname": spec.hostname,
        "mounts": _mounts(spec),
        "linux": _linux(spec),
        "annotations": dict(spec.annotations),
        **_hooks(spec),
    }


def _hooks(spec: ContainerSpec) -> dict[str, Any]:
    """The NVIDIA prestart hook mounts the GPU devices and driver for runc containers."""
    if not (spec.gpus and spec.gpu_hook):
        return {}
    return {"hooks": {"prestart": [{"path": spec.gpu_hook, "args": [spec.gpu_hook, "prestart"]}]}}
