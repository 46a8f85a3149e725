"""A minimal init as every container's PID 1, as ``docker run --init`` gives.

Without it the command is PID 1: under runc the kernel then ignores the signals it has no
handler for (``sh -c 'kill -SEGV $$'`` exits 0, not 139) and nobody reaps orphans; under gVisor
signals behave but orphans stay zombies too. With tini as PID 1 on both runtimes, a command
killed by a signal ends the container with 128+signal, signals sent to the container reach the
command, and orphans are reaped.
"""

from __future__ import annotations

import shutil
from typing import Any

__all__ = ["INIT_PATH", "find_init", "with_init", "without_init"]

# Debian's package `tini` ships a static build: it runs in any image, with no libc there.
INIT_BINARIES = ("/usr/bin/tini-static", "tini-static")
INIT_PATH = "/dev/init"  # on the container's /dev tmpfs: nothing is written into the image


def find_init() -> str | None:
    """The host's static tini, or None."""
    for name in INIT_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def with_init(spec: dict[str, Any], init: str) -> dict[str, Any]:
    """``spec`` whose PID 1 is ``init`` (bind-mounted read-only), running the command as its
    child (``spec`` is changed in place and returned)."""
    process = spec.setdefault("process", {})
    process["args"] = [INIT_PATH, "--", *process.get("args", [])]
    spec.setdefault("mounts", []).append(
        {"destination": INIT_PATH, "type": "bind", "source": init,
         "options": ["bind", "ro", "nosuid", "nodev"]}
    )  # fmt: skip
    return spec


def without_init(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as it was before ``with_init``: for a container whose command is an init of
    its own (a sandbox's), which reaps and forwards signals itself (changed in place)."""
    process = spec.get("process", {})
    args = process.get("args", [])
    if args[:2] == [INIT_PATH, "--"]:
        process["args"] = args[2:]
        spec["mounts"] = [m for m in spec.get("mounts", []) if m.get("destination") != INIT_PATH]
    return spec
