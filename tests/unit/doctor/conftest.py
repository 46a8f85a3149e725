"""Stand-ins for the doctor's unit tests: runtime binaries as shell scripts, a fake /dev and
cgroup tree, a recording smoke test; no root, no runc/runsc, no GPU, no cluster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, ok

RUNSC_VERSION = "0.0~20221219.0"
BOOKWORM_RUNSC = f"""\
case "$1" in
  --version) echo "runsc version {RUNSC_VERSION}"; echo "spec: 1.0.2-dev" ;;
  help) printf 'kvm\\nptrace\\n' ;;
  flags) printf '  -platform string\\n    \\tplatform\\n  -root string\\n' ;;
  *) exit 64 ;;
esac"""
NVPROXY_RUNSC = (
    BOOKWORM_RUNSC.replace("0.0~20221219.0", "release-20240101.0")
    .replace("'kvm\\nptrace\\n'", "'kvm\\nptrace\\nsystrap\\n'")
    .replace("  -root string", "  -nvproxy\\n  -root string")
)
RUNC = 'echo "runc version 1.1.5+ds1"; echo "spec: 1.0.2-dev"'


def stub(directory: Path, name: str, body: str) -> str:
    """An executable shell script standing in for a program."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@dataclass
class SmokeRecorder:
    """A smoke test that records its calls and answers ok."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, pool: ResolvedPool, config: ResolvedConfig, timeout: float) -> Check:
        self.calls.append((pool.name, timeout))
        return ok(pool.name, "smoke", "stand-in smoke test passed")


def fake_cgroup_v1(root: Path, controllers: tuple[str, ...] = ("memory", "pids")) -> Path:
    """A v1 tree with the files the doctor looks for in each controller's hierarchy."""
    markers = {"memory": "memory.oom_control", "pids": "cgroup.procs"}
    for name in controllers:
        (root / name).mkdir(parents=True)
        (root / name / markers[name]).write_text("")
    return root


@pytest.fixture
def smoke() -> SmokeRecorder:
    """The recording smoke test."""
    return SmokeRecorder()


@pytest.fixture
def probes(tmp_path: Path, smoke: SmokeRecorder) -> HostProbes:
    """A healthy v1 host without GPU or KVM, whose smoke test is the recorder."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "loop-control").touch()
    (tmp_path / "filesystems").write_text("nodev\tproc\n\text4\nnodev\toverlay\n")
    return HostProbes(
        mkfs_ext4="true",  # found on PATH: the disk check only looks it up
        proc_filesystems=tmp_path / "filesystems",
        dev_dir=tmp_path / "dev",
        kvm_device=str(tmp_path / "dev" / "kvm"),
        cgroup_root=fake_cgroup_v1(tmp_path / "cgroup"),
        nvidia_smi=str(tmp_path / "bin" / "nvidia-smi"),
        smoke_test=smoke,
        userns_off_reason=lambda config: None,
    )


Loader = Callable[[str], LoadedConfig]


@pytest.fixture
def load_yaml(tmp_path: Path) -> Loader:
    """Load a configuration given as text; stateDir and gvisorRoot default into tmp_path."""
    counter = iter(range(1000))

    def load(text: str) -> LoadedConfig:
        head = f"worker:\n  stateDir: {tmp_path / 'state'}\n"
        path = tmp_path / f"config-{next(counter)}.yaml"
        path.write_text(text.replace("worker:\n", head, 1))
        return LoadedConfig.load([str(path)], {})

    return load


def gvisor_pool(runsc: str, root: Path, extra: str = "") -> str:
    """A config document with one gVisor pool ``secure`` using the stub ``runsc``."""
    return (
        f"worker:\n  runscPath: {runsc}\n  pools:\n    secure:\n      containerRuntime: gvisor\n"
        f"      containerRuntimeConfig:\n        gvisorRoot: {root}\n{extra}"
    )
