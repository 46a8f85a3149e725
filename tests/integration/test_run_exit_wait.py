"""A one-shot run sees its command's end as it happens, not at the next poll (cold runs with
a timeout, warm gVisor runs): ``worker.exit_wait`` sleeps on a pidfd instead of
``Popen.wait(timeout)``'s 1, 2, 4 … 50 ms sleeps, which made a run end up to 50 ms after its
command. Real runc and gVisor; the run's own thread is watched for ``Popen.wait`` with a
timeout (a poll), the one that the old code made on every such run."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox
from tests.integration.sandbox.conftest import RUNTIMES
from tests.integration.sandbox.test_warm import _warm_ids, warm

__all__ = ["warm"]  # the fixture
pytestmark = pytest.mark.timeout(240)
POOLS = [
    pytest.param("performance", marks=[pytest.mark.root, pytest.mark.runc], id="runc"),
    pytest.param("default", marks=[pytest.mark.root, pytest.mark.runsc], id="gvisor"),
]


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The argv of each ``Popen.wait(timeout)`` this thread makes (the sandpool run's own
    thread; a warm pool's refill runs in threads of its own)."""
    seen: list[Any] = []
    here, original = threading.get_ident(), subprocess.Popen.wait

    def wait(self: subprocess.Popen[Any], timeout: float | None = None) -> int:
        if timeout is not None and threading.get_ident() == here:
            seen.append(self.args)
        return original(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", wait)
    yield seen


@pytest.mark.parametrize("pool", POOLS)
def test_a_cold_run_with_a_timeout_waits_for_its_end_without_polling(
    sp: Sandpool, no_leaks: Sandbox, polls: list[Any], pool: str
) -> None:
    """With a timeout, the runtime's ``run`` is waited for on a pidfd; the timeout and the
    exit code are still told."""
    result = sp.run(pool, ["sh", "-c", "sleep 0.2; exit 7"], timeout=30)
    assert (result.exit_code, result.timed_out) == (7, False), result.error
    assert not [argv for argv in polls if "run" in argv], polls
    timed_out = sp.run(pool, ["sleep", "30"], timeout=1)  # (its stop may poll: it kills)
    assert (timed_out.exit_code, timed_out.timed_out) == (124, True), timed_out.error


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_warm_run_waits_for_its_end_without_polling(
    warm: Sandpool, polls: list[Any], runtime: str
) -> None:
    """A warm run (gVisor: its exec stub ended, then ``runsc exec``) is waited for on a
    pidfd; exit code and output as before."""
    pool = f"warm-{runtime}"
    assert warm.sandboxes.wait_warm(120)
    ready = _warm_ids(warm, pool)
    result = warm.run(pool, ["sh", "-c", "sleep 0.2; echo done; exit 3"], timeout=30)
    assert result.id in ready, "not a warm run"
    assert (result.exit_code, result.stdout, result.timed_out) == (3, b"done\n", False)
    assert polls == [], polls
