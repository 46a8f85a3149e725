"""A networked start (``open`` policy) SIGKILLed at each step of its network's set-up, on
runc and gVisor, a one-shot run and a sandbox: ``gc`` then leaves no namespace, veth,
nftables table, address lease, nor anything else (``test_interrupted_starts`` for the
steps every start shares). Steps (``crash_owner``): ``policy`` (the policy file, written
first), ``lease`` (its address), ``table`` (its nftables table), ``netns`` (its namespace and
veth; a runc sandbox in a user namespace gets them once its container runs)."""

from __future__ import annotations

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.worker.recovery import collect_garbage
from tests.integration.conftest import Sandbox
from tests.integration.network.conftest import network_config, network_leftovers, veths
from tests.integration.network.testnet import Upstream
from tests.integration.test_interrupted_starts import crash, leftovers, settle

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
CASES = [
    *(pytest.param("performance", step, marks=pytest.mark.runc, id=f"runc-{step}")
      for step in ("policy", "lease", "table", "netns")),
    *(pytest.param("default", step, marks=pytest.mark.runsc, id=f"gvisor-{step}")
      for step in ("table", "netns")),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["run-open", "sandbox-open"])
@pytest.mark.parametrize(("pool", "step"), CASES)
def test_a_networked_start_killed_at_each_network_step_leaves_nothing_after_gc(
    sp: Sandpool, sandbox: Sandbox, upstream: Upstream, pool: str, step: str, kind: str
) -> None:
    config_file = network_config(sandbox, upstream)
    before = veths(sandbox.state_dir)
    crash(config_file, pool, kind, step)
    sp.close()
    assert leftovers(sandbox), f"the owner killed at {step} should have left something"
    if step != "policy":  # from its lease on, network pieces are left too
        assert network_leftovers(sandbox.state_dir), f"{step} left no network piece"
    collect_garbage(LoadedConfig.load([str(config_file)], {}).resolved)
    settle(sandbox)
    assert network_leftovers(sandbox.state_dir) == []
    assert veths(sandbox.state_dir) - before == set()
    assert leftovers(sandbox) == []
