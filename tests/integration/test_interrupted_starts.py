"""A start (one-shot run, sandbox create, warm-pool fill) or its clean-up SIGKILLed at each
step, on runc and gVisor: ``gc`` (and a restarted server's adopt and clean-up) then leaves
nothing: no container, mount, loop device, cgroup, uid range, runtime state or directory.

The owner is a real process (``crash_owner``) that kills itself at the step named, with
nothing of its own clean-up run. Steps: ``dir`` (its directory made, no record yet),
``record``, ``disk`` (its ext4 loop-mounted), ``overlay`` (its rootfs mounted; in a user
namespace, the idmapped image layer attached), ``cgroup``, ``spawn`` (the runtime just
spawned: it goes on starting the container after its owner died, while ``gc`` runs),
``runtime`` (a run's container ran; a sandbox's started), ``cleanup`` (the clean-up removed
the directory, not the rest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.config.resolved import ResolvedConfig
from sandpool.sandbox.init_binary import init_binary
from sandpool.worker.disk import DISK_NAME, disks_dir
from sandpool.worker.records import containers_dir, process_start_time
from sandpool.worker.recovery import RECORDLESS_GRACE_S, collect_garbage, reconcile_dead_owners
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[2]
RUNC = pytest.param("performance", marks=pytest.mark.runc, id="runc")
GVISOR = pytest.param("default", marks=pytest.mark.runsc, id="gvisor")
EVERY_STEP = ["dir", "record", "disk", "overlay", "cgroup", "spawn", "runtime", "cleanup"]
# gVisor differs from runc from the runtime on (no user namespace of sandpool's either)
GVISOR_STEPS = ["overlay", "spawn", "runtime", "cleanup"]
SETTLE_S = 60.0


def _cases() -> list[object]:
    runc = [pytest.param(RUNC.values[0], step, marks=RUNC.marks, id=f"runc-{step}")
            for step in EVERY_STEP]  # fmt: skip
    gvisor = [pytest.param(GVISOR.values[0], step, marks=GVISOR.marks, id=f"gvisor-{step}")
              for step in GVISOR_STEPS]  # fmt: skip
    return [*runc, *gvisor]


def crash(config_file: Path, pool: str, kind: str, step: str) -> None:
    """Run the owner that SIGKILLs itself at ``step``; it must have got there."""
    owner = subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_owner", str(config_file), pool, kind,
         step], cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert owner.returncode == -9, f"step {step} not reached: {owner.stderr[-2000:]}"


def _runtime_processes(box: Sandbox) -> list[int]:
    """Processes of this installation's runtimes (their command lines name its paths)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if os.fsencode(box.base) in cmdline and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def settle(box: Sandbox) -> None:
    """Wait until no runtime process of the crashed start is left (``spawn``: the runtime
    finishes, or fails, its start after ``gc``): only then is what is left final."""
    deadline = time.monotonic() + SETTLE_S
    while (left := _runtime_processes(box)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"runtime processes still running: {left}"


def _age_recordless_dirs(state_dir: Path) -> None:
    """Make a directory without a record look older than the grace ``gc`` gives a container
    being created (what waiting ``RECORDLESS_GRACE_S`` would do)."""
    old = time.time() - RECORDLESS_GRACE_S - 5
    for directory in containers_dir(state_dir).glob("*"):
        if not (directory / "record.json").exists():
            os.utime(directory, (old, old))


def _stray_files(state_dir: Path) -> list[str]:
    """Entries under ``disks/`` that no live process keeps (an idle disk of one is not), and
    temporary files of a sandbox init's build."""
    found = [f"temporary file {f}" for f in sorted((state_dir / "bin").glob("*.tmp"))]
    for entry in sorted(disks_dir(state_dir).glob("*")):
        match = DISK_NAME.match(entry.name)
        if match is None or process_start_time(int(match[1])) != int(match[2]):
            found.append(f"disk entry {entry}")
    return found


def leftovers(box: Sandbox) -> list[str]:
    return box.leftovers() + _stray_files(box.state_dir)


def _config(path: Path) -> ResolvedConfig:
    return LoadedConfig.load([str(path)], {}).resolved


def crash_then_gc(box: Sandbox, sp: Sandpool, config_file: Path, pool: str, kind: str,
                   step: str) -> None:  # fmt: skip
    crash(config_file, pool, kind, step)
    sp.close()  # the session's idle slots and disks are not this test's leftovers
    assert leftovers(box), f"the owner killed at {step} should have left something"
    _age_recordless_dirs(box.state_dir)
    collect_garbage(_config(config_file))
    settle(box)
    assert leftovers(box) == []


@pytest.mark.parametrize(("pool", "step"), _cases())
def test_a_run_killed_at_each_step_leaves_nothing_after_gc(
    sp: Sandpool, sandbox: Sandbox, pool: str, step: str
) -> None:
    crash_then_gc(sandbox, sp, sandbox.config_file, pool, "run", step)


@pytest.mark.parametrize(("pool", "step"), _cases())
def test_a_sandbox_create_killed_at_each_step_leaves_nothing_after_gc(
    sp: Sandpool, sandbox: Sandbox, pool: str, step: str
) -> None:
    """``cleanup``: the sandbox's terminate, cut short after its directory went, left its
    cgroup (named after the sandbox), which no record names any more."""
    crash_then_gc(sandbox, sp, sandbox.config_file, pool, "sandbox", step)


@pytest.mark.parametrize("pool", [RUNC, GVISOR])
def test_a_sandbox_terminate_killed_midway_is_cleaned_by_a_restarted_server(
    sp: Sandpool, sandbox: Sandbox, pool: str
) -> None:
    """A server starting again adopts what it can and removes dead owners' leftovers
    (``warm.pools``: ``adopt`` then ``reconcile_dead_owners``), the cut-short terminate's
    cgroup included."""
    crash(sandbox.config_file, pool, "sandbox", "cleanup")
    sp.close()
    config = _config(sandbox.config_file)
    with Sandpool(config) as restarted:
        restarted.sandboxes.adopt()
        reconcile_dead_owners(config)
    settle(sandbox)
    assert leftovers(sandbox) == []


@pytest.mark.runc
def test_a_sandbox_create_killed_while_building_its_init_leaves_nothing_after_gc(
    sp: Sandpool, sandbox: Sandbox
) -> None:
    """The first sandbox of a state dir compiles sandpool's init; a create killed before the
    build's rename left its temporary file, which nothing removed."""
    built = init_binary(sandbox.state_dir)  # built once per state dir
    aside = built.with_name("aside")
    built.rename(aside)  # so that the crashing create builds it again
    try:
        crash_then_gc(sandbox, sp, sandbox.config_file, "performance", "sandbox", "init")
    finally:
        aside.rename(built)


def _warm_config(box: Sandbox, pool: str) -> Path:
    """The session's pools, ``pool`` (only) with one warm sandbox."""
    path = box.base / "crash-warm.yaml"
    warm = {pool: "      warmPool:\n        size: 1\n"}
    path.write_text(
        f"worker:\n  stateDir: {box.state_dir}\n  cgroupParent: {box.cgroup_parent}\n"
        "  pools:\n    performance:\n      containerRuntime: runc\n"
        + warm.get("performance", "")
        + "    default:\n      containerRuntime: gvisor\n"
        f"      containerRuntimeConfig:\n        gvisorRoot: {box.gvisor_root}\n"
        + warm.get("default", "")
    )
    return path


@pytest.mark.parametrize("pool", [RUNC, GVISOR])
@pytest.mark.parametrize("step", ["overlay", "runtime"])
def test_a_warm_pool_fill_killed_midway_leaves_nothing_after_gc(
    sp: Sandpool, sandbox: Sandbox, pool: str, step: str
) -> None:
    crash_then_gc(sandbox, sp, _warm_config(sandbox, pool), pool, "warm", step)
