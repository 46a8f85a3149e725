"""Integration fixtures: real runc/runsc, as root, in a throw-away state dir, gVisor root and
cgroup parent; after the session, nothing may be left (containers, mounts, cgroups, dirs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.worker.disk import DISK_NAME
from sandpool.worker.records import process_start_time
from sandpool.worker.slots import SLOT_NAME

ROOT = os.geteuid() == 0
HAVE_RUNC = shutil.which("runc") is not None
HAVE_RUNSC = shutil.which("runsc") is not None
CGROUP_ROOT = Path("/sys/fs/cgroup")


def parent_cgroups(parent: str) -> list[Path]:
    """The directories of sandpool's parent cgroup: one on cgroup v2, one per v1 hierarchy."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT / parent]
    return sorted(CGROUP_ROOT.glob(f"*/{parent}"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip, with the reason, what this machine cannot run."""
    reasons = {
        "root": (ROOT, "needs root (namespaces, mounts, cgroups)"),
        "runc": (HAVE_RUNC, "runc not installed (./setup.sh installs it)"),
        "runsc": (HAVE_RUNSC, "runsc not installed (./setup.sh installs it)"),
    }
    for item in items:
        for marker, (ok, why) in reasons.items():
            if item.get_closest_marker(marker) and not ok:
                item.add_marker(pytest.mark.skip(reason=why))


class Sandbox:
    """Paths of one test session's sandpool installation."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.state_dir = base / "state"
        self.gvisor_root = base / "gvisor"
        self.cgroup_parent = f"sandpool-test-{os.getpid()}"
        self.config_file = base / "pools.yaml"

    def write_config(self, extra_pools: str = "") -> Path:
        """The session's config: `performance` (runc) and `default` (gVisor, ptrace)."""
        self.config_file.write_text(
            f"worker:\n  stateDir: {self.state_dir}\n  cgroupParent: {self.cgroup_parent}\n"
            f"  pools:\n    performance:\n      containerRuntime: runc\n"
            f"    default:\n      containerRuntime: gvisor\n"
            f"      containerRuntimeConfig:\n        gvisorRoot: {self.gvisor_root}\n" + extra_pools
        )
        return self.config_file

    def leftovers(self) -> list[str]:
        """Everything a run may leak, as readable lines (empty when clean)."""
        found = []
        runc = subprocess.run(["runc", "--root", str(self.state_dir / "runc"), "list", "-q"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        found += [f"runc container {c}" for c in runc.stdout.split()]
        if self.gvisor_root.exists():
            runsc = subprocess.run(["runsc", "--root", str(self.gvisor_root), "list", "-quiet"],
                                   capture_output=True, text=True, check=False)  # fmt: skip
            found += [f"runsc container {c}" for c in runsc.stdout.split()]
        if self.gvisor_root.exists():
            found += [f"runsc file {f}" for f in self.gvisor_root.glob("*_sandbox:sp-*")]
        with open("/proc/self/mountinfo") as info:
            mounts = [Path(ln.split()[4]) for ln in info if str(self.base) in ln.split()[4]]
        found += [f"mount {m}" for m in mounts if not _idle_disk_of_another_live_process(m)]
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            with contextlib.suppress(OSError):  # a loop device detached meanwhile
                file = backing.read_text().strip().removesuffix(" (deleted)")
                disk = Path(file.removesuffix(".img"))
                if str(self.base) in file and not _idle_disk_of_another_live_process(disk):
                    found.append(f"loop device {backing.parent.parent.name} of {file}")
        for cg in (c for top in parent_cgroups(self.cgroup_parent) for c in top.glob("*")):
            if cg.is_dir() and not _idle_slot_of_another_live_process(cg):
                found.append(f"cgroup {cg}")
        containers = self.state_dir / "containers"
        if containers.exists():
            found += [f"state dir {d}" for d in containers.iterdir()]
        ranges = self.state_dir / "userns"
        if ranges.exists():
            found += [f"uid range {f.name} held by {f.read_text()}" for f in ranges.iterdir()
                      if f.read_text()]  # fmt: skip
        return found

    def remove_parent_cgroups(self) -> None:
        """Drop the (empty) per-session cgroup parents."""
        for cg in parent_cgroups(self.cgroup_parent):
            if cg.is_dir():
                cg.rmdir()


def _idle_slot_of_another_live_process(cg: Path) -> bool:
    """A warm cgroup slot that a live ``sandpool serve`` keeps, empty: not a leak while its
    owner lives (it removes its slots when it stops; the session check runs after that)."""
    match = SLOT_NAME.match(cg.name)
    if match is None or int(match[1]) == os.getpid():
        return False
    if process_start_time(int(match[1])) != int(match[2]) or (cg / "ctr").exists():
        return False
    return not (cg / "cgroup.procs").read_text().strip()


def _idle_disk_of_another_live_process(path: Path) -> bool:
    """A warm disk (``worker.disk``) that a live ``sandpool serve`` keeps, empty."""
    match = DISK_NAME.match(path.name)
    if match is None or int(match[1]) == os.getpid():
        return False
    if process_start_time(int(match[1])) != int(match[2]):
        return False
    return not (path / "upper").exists() and not (path / "work").exists()


@contextlib.contextmanager
def reachable_tmp_dir() -> Iterator[Path]:
    """A temporary directory that other users may pass through (0711 under /tmp): a runc
    container's root, an unprivileged host uid in its user namespace, must walk the path to its
    rootfs, which pytest's 0700 tmp_path does not allow (sandpool would run it without one)."""
    path = Path(tempfile.mkdtemp(prefix="sandpool-it-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One sandpool installation for the whole session, checked for leaks at the end."""
    with reachable_tmp_dir() as base:
        box = Sandbox(base)
        box.write_config()
        yield box
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not left, f"integration tests leaked: {left}"


@pytest.fixture
def no_leaks(sandbox: Sandbox, sp: Sandpool) -> Iterator[Sandbox]:
    """Fail the test itself if it leaves anything behind once the session's Sandpool is
    closed (which removes its idle warm cgroups; it keeps working, without keeping them)."""
    yield sandbox
    sp.close()
    assert sandbox.leftovers() == []


@pytest.fixture(scope="session")
def sp(sandbox: Sandbox) -> Iterator[Sandpool]:
    """A Sandpool over the session config (busybox image pre-pulled)."""
    with Sandpool(LoadedConfig.load([str(sandbox.config_file)], {}).resolved) as pool:
        yield pool
