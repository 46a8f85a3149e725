"""Timed calls of the Python API that several benches share: a sandbox's first command
(create + exec ``true`` + its exit code, the terminate after the timer) and an exec of
``true`` in a running sandbox. ``span`` (e.g. ``CpuMeter.span``) wraps exactly the timed
part."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from bench.fixtures import SMALL_IMAGE
from sandpool.api import Sandpool
from sandpool.sandbox import ExecRequest, SandboxRequest

__all__ = ["TRUE", "FirstCommand", "exec_true", "first_command"]

TRUE = ExecRequest(("true",))
Span = AbstractContextManager[object] | None


@dataclass(frozen=True)
class FirstCommand:
    """Seconds from the create's call to the exec's exit code, and of the create alone."""

    elapsed: float
    create: float


def first_command(sp: Sandpool, pool: str, span: Span = None) -> FirstCommand:
    """Create a sandbox of ``pool``, exec ``true`` in it, read its exit code (timed);
    then terminate it. RuntimeError if ``true`` did not exit 0."""
    with span or nullcontext():
        start = time.perf_counter()
        box = sp.sandboxes.create(SandboxRequest(pool, SMALL_IMAGE)).id
        created = time.perf_counter()
        code = sp.sandboxes.exec(box, TRUE).exit_code
        elapsed = time.perf_counter() - start
    sp.sandboxes.terminate(box)  # outside the timer
    if code != 0:
        raise RuntimeError(f"the first exec in {pool} exited {code}")
    return FirstCommand(elapsed, created - start)


def exec_true(sp: Sandpool, box: str, span: Span = None) -> float:
    """Seconds for an exec of ``true`` in the running sandbox ``box`` (RuntimeError unless
    it exited 0)."""
    with span or nullcontext():
        start = time.perf_counter()
        code = sp.sandboxes.exec(box, TRUE).exit_code
        elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"exec of true in {box} exited {code}")
    return elapsed
