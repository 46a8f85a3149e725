"""A sandpool owner that SIGKILLs itself at one named step of a start (test-only fault
injection): ``python -m tests.integration.crash_owner CONFIG POOL KIND STEP``.

KIND is ``run`` (a one-shot ``true``), ``sandbox`` (a sandbox create, then its terminate) or
``warm`` (a warm pool's fill: the configuration gives POOL ``warmPool.size: 1``);
``run-open`` and ``sandbox-open`` give the container the network policy ``open``. STEP
names the point, by the function it wraps, at which the process dies, with nothing of
sandpool's clean-up run (SIGKILL): a real crash, at a point chosen deterministically. Exit
status -9 proves the step was reached; anything else means it was not (the test then fails,
naming the step).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.network import addresses, attach, netns, nft
from sandpool.sandbox import launch
from sandpool.worker import cgroups, container, disk, userns
from sandpool.worker.records import ContainerRecord


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, name: str, *, before: bool = False,
          when: Callable[..., bool] = lambda *a, **k: True) -> None:  # fmt: skip
    """Make ``owner.name`` SIGKILL this process before or after its call (where ``when``)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hit = when(*args, **kwargs)
        if hit and before:
            _die()
        result = original(*args, **kwargs)
        if hit:
            _die()
        return result

    setattr(owner, name, wrapper)


def _is_mount(argv: list[str], *_: Any, **__: Any) -> bool:
    return argv[0] == "mount"


def _is_runtime_run(argv: list[str], *_: Any, **__: Any) -> bool:
    return "run" in argv and "--bundle" in argv


def _is_container_dir(path: Any, *_: Any, **__: Any) -> bool:
    return Path(path).parent.name == "containers"


def _inject_network(step: str) -> None:
    """The network's policy file (written first), its address, nftables table, namespace and
    veth (for a runc sandbox in a user namespace: once its container runs)."""
    if step == "policy":
        _wrap(attach, "_write_policy")
    elif step == "lease":
        _wrap(addresses, "lease")
    elif step == "table":
        _wrap(nft, "create_table")
    else:
        _wrap(netns, "create")


def _inject(step: str) -> None:
    """Install the fault for ``step`` (the steps of a start, in order, then its clean-up)."""
    if step == "dir":  # its directory exists, its record not yet
        _wrap(ContainerRecord, "save", before=True)
    elif step == "record":
        _wrap(ContainerRecord, "save")
    elif step == "disk":  # the disk's ext4 is loop-mounted, its backing file not unlinked yet
        _wrap(disk, "_run", when=_is_mount)
    elif step == "overlay":  # the rootfs overlay (and, in a user namespace, the idmap) mounted
        _wrap(container, "mount_overlay")
        _wrap(userns, "mount_overlay")
    elif step == "cgroup":
        _wrap(cgroups.CgroupV1, "create")
        _wrap(cgroups.CgroupV2, "create")
    elif step == "runtime":  # a run's container ran and exited; a sandbox's was started
        _wrap(container.ContainerRun, "_wait")
        _wrap(launch.SandboxContainer, "start")
    elif step in ("policy", "lease", "table", "netns"):  # a network's pieces, in order
        _inject_network(step)
    elif step == "init":  # a sandbox's init compiled, not yet renamed into place
        _wrap(subprocess, "run", when=lambda argv, *a, **k: "-static" in argv)
    elif step == "spawn":  # the runtime was just spawned: it goes on starting the container
        _wrap(subprocess, "Popen", when=_is_runtime_run)
    elif step == "cleanup":  # the clean-up removed the directory, nothing after it
        _wrap(shutil, "rmtree", when=_is_container_dir)  # as recovery calls it
    else:
        raise SystemExit(f"unknown step {step!r}")


def main(config_file: str, pool: str, kind: str, step: str) -> int:
    """Start a ``kind`` in ``pool`` with the fault of ``step``; 0 if it was never hit."""
    config = LoadedConfig.load([config_file], {}).resolved
    sp = Sandpool(config)
    sp.images.get("builtin:busybox")  # pulled before any fault
    _inject(step)
    network = "open" if kind.endswith("-open") else None
    if kind.startswith("run"):
        sp.run(pool, ["true"], image="builtin:busybox", capture=True, network=network)
    elif kind.startswith("sandbox"):  # ``cleanup``: dies in its terminate
        sp.create_sandbox(pool, "builtin:busybox", network=network).terminate()
    elif kind == "warm":
        sp.start_warm()
        sp.sandboxes.wait_warm(120)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
