"""Files a process writes under a temporary name before renaming them into place, named after
that process (``<name>.<pid>-<start>.tmp``), so ``gc`` can tell a dead writer's from a live
one's by the name alone (as for warm slots and disks), e.g. the sandbox init a create was
compiling when it was killed (``sandbox.init_binary``): nothing else would ever remove it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from sandpool.worker.records import process_start_time

__all__ = ["remove_dead_temp_files", "temp_name"]

log = logging.getLogger(__name__)
TEMP_NAME = re.compile(r"^.+\.(\d+)-(\d+)\.tmp$")  # pid, start time


def temp_name(target: Path) -> Path:
    """Where this process writes ``target`` before renaming it into place."""
    pid = os.getpid()
    return target.with_name(f"{target.name}.{pid}-{process_start_time(pid) or 0}.tmp")


def remove_dead_temp_files(directory: Path) -> list[str]:
    """Remove the temporary files in ``directory`` whose writer is gone; their names."""
    removed = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(directory)):
            match = TEMP_NAME.match(name)
            if match is None or process_start_time(int(match[1])) == int(match[2]):
                continue
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
                log.info("gc: removed %s (its writer is gone)", name)
                removed.append(name)
    return removed
