"""``kill`` and ``gc`` through the API, without a CLI process per step (cheap enough for the
VM stage, where every Python start costs seconds): a killed run ends with 137, and ``gc``
after its owner was SIGKILLed removes the container it left running, and nothing is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from sandpool.api import Sandpool
from sandpool.worker.request import RunResult
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]
POOLS = ["performance", "default"]  # runc, gVisor
BUSYBOX = "builtin:busybox"
OWNER = """
import sys
from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
sp = Sandpool(LoadedConfig.load([sys.argv[1]], {}).resolved)
sp.run(sys.argv[2], ["sh", "-c", "echo up; sleep 300"], image="builtin:busybox", capture=False,
       stdout=1)
"""


@pytest.mark.parametrize("pool", POOLS)
def test_kill_ends_a_running_container_with_137(sp: Sandpool, no_leaks: Sandbox, pool: str) -> None:
    results: list[RunResult] = []
    read_end, write_end = os.pipe()

    def run() -> None:
        try:
            results.append(sp.run(pool, ["sh", "-c", "echo up; sleep 300"], image=BUSYBOX,
                                  timeout=600, capture=False, stdout=write_end))  # fmt: skip
        finally:
            os.close(write_end)  # a failed run ends the readline below

    runner = threading.Thread(target=run)
    runner.start()
    with os.fdopen(read_end, "rb") as started:
        line = started.readline()
        if line == b"up\n":
            [record] = sp.ps()
            sp.kill(record.id)
        runner.join(timeout=120)
    assert line == b"up\n"
    assert [(r.exit_code, r.oom_killed, r.timed_out) for r in results] == [(137, False, False)]


@pytest.mark.parametrize("pool", POOLS)
def test_gc_after_a_sigkilled_owner_leaves_nothing(
    sp: Sandpool, sandbox: Sandbox, no_leaks: Sandbox, pool: str
) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(sandbox.config_file), pool],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert owner.stdout is not None and owner.stdout.readline() == b"up\n", owner.stderr
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    assert sandbox.leftovers(), "the SIGKILLed owner should have left its container"
    assert len(sp.gc()) == 1
    assert sp.ps() == []
    owner.communicate(timeout=60)  # gc killed the container: the pipes close
