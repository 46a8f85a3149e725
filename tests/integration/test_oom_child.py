"""An OOM kill of a child process, while the container's main process lives on, is still an OOM:
the container is stopped and reported as 137 with ``oom_killed`` on both runtimes (the README's
"How limits and OOM are enforced"); the next run in the same warm slot is not."""

from __future__ import annotations

import pytest

from sandpool.api import Sandpool
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
BUSYBOX = "builtin:busybox"
# The child (awk) doubles a string until it holds over 100 MB of anonymous memory, with few
# system calls (fast under gVisor too); the main sh only waits for it, then sleeps.
CHILD_HOG = (
    "awk 'BEGIN { s = \"x\"; while (length(s) < 134217728) s = s s }'; echo child $?; sleep 30"
)


@pytest.mark.parametrize("pool", POOLS)
def test_a_child_oom_is_an_oom_while_the_main_process_survives(
    sp: Sandpool, no_leaks: Sandbox, pool: str
) -> None:
    result = sp.run(pool, ["sh", "-c", CHILD_HOG], image=BUSYBOX, memory="40Mi", timeout=90)
    assert (result.exit_code, result.oom_killed, result.timed_out) == (137, True, False), (
        result.stdout,
        result.stderr,
    )
    after = sp.run(pool, ["sh", "-c", "echo fine"], image=BUSYBOX, memory="40Mi")
    assert (after.exit_code, after.oom_killed, after.stdout) == (0, False, b"fine\n")
