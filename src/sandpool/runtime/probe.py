"""What the installed runsc offers: version, platforms and flags, probed once per process."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sandpool.config.cache import cache_dir, file_stamp, write_entry
from sandpool.errors import ContainerRuntimeError, PlatformNotSupported
from sandpool.runtime.runner import run_command

__all__ = ["RunscInfo", "check_platform", "default_platform", "probe_runsc"]

PREFERRED_PLATFORMS = ("systrap", "ptrace")
KVM_DEVICE = "/dev/kvm"


@dataclass(frozen=True)
class RunscInfo:
    """The facts about one runsc binary that decide how sandpool drives it."""

    binary: str
    version: str
    platforms: tuple[str, ...]
    flags: frozenset[str]

    @property
    def has_nvproxy(self) -> bool:
        """Whether this build can pass NVIDIA GPUs through (``--nvproxy``)."""
        return "nvproxy" in self.flags


def _parse_flags(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"^\s+-{1,2}([a-z0-9][a-z0-9_-]*)", text, re.MULTILINE))


@functools.lru_cache(maxsize=8)
def probe_runsc(binary: str) -> RunscInfo:
    """Ask ``binary`` for its version, platforms and flags (cached for the process, and on disk
    keyed by the binary's path, inode, mtime and size: three runsc execs cost ~60 ms)."""
    entry = _cache_entry(binary)
    cached = _read_cached(entry) if entry else None
    if cached is not None:
        return cached
    info = _probe(binary)
    if entry is not None:
        write_entry(entry, {**asdict(info), "flags": sorted(info.flags)})
    return info


def _cache_entry(binary: str) -> Path | None:
    """The cache file for this version of ``binary`` (see ``config.cache``), or None."""
    folder = cache_dir()
    try:
        stamp = json.dumps(file_stamp(Path(os.path.abspath(binary))))
    except OSError:
        return None
    if folder is None:
        return None
    return folder / f"runsc-{hashlib.sha256(stamp.encode()).hexdigest()[:32]}.json"


def _read_cached(entry: Path) -> RunscInfo | None:
    try:
        data = json.loads(entry.read_text())
        return RunscInfo(str(data["binary"]), str(data["version"]),
                         tuple(data["platforms"]), frozenset(data["flags"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _probe(binary: str) -> RunscInfo:
    version_out = run_command([binary, "--version"], timeout=10).stdout
    first = version_out.strip().splitlines()[0] if version_out.strip() else "runsc (unknown)"
    version = first.removeprefix("runsc version ").strip()
    platforms_out = run_command([binary, "help", "platforms"], timeout=10, check=False)
    platforms = tuple(p.strip() for p in platforms_out.stdout.split() if p.strip())
    flags_out = run_command([binary, "flags"], timeout=10, check=False)
    flags = _parse_flags(flags_out.stdout + flags_out.stderr)
    if not platforms:
        raise ContainerRuntimeError(f"{binary} did not list its platforms (`runsc help platforms`)")
    return RunscInfo(binary, version, platforms, flags)


def default_platform(info: RunscInfo) -> str:
    """systrap when this runsc has it, else ptrace (SPEC §1)."""
    for platform in PREFERRED_PLATFORMS:
        if platform in info.platforms:
            return platform
    return info.platforms[0]


def kvm_usable(device: str = KVM_DEVICE) -> bool:
    """Whether ``device`` exists and this process may open it read-write."""
    return os.path.exists(device) and os.access(device, os.R_OK | os.W_OK)


def check_platform(info: RunscInfo, platform: str, *, kvm_device: str = KVM_DEVICE) -> None:
    """Raise PlatformNotSupported unless ``platform`` can be used with this runsc here."""
    if platform not in info.platforms:
        hint = "set containerRuntimeConfig.gvisorPlatform to one of those, or leave it unset"
        if platform == "systrap":
            hint += "; systrap needs runsc release-20230227 or later"
        raise PlatformNotSupported(
            f"gVisor platform '{platform}' is not offered by {info.binary} "
            f"(version {info.version}), which has: {', '.join(info.platforms)}",
            hint=hint,
        )
    if platform == "kvm" and not kvm_usable(kvm_device):
        raise PlatformNotSupported(
            f"gVisor platform 'kvm' needs a usable {kvm_device}",
            hint="enable KVM (nested virtualisation) or use the systrap or ptrace platform",
        )
