"""The test network itself: two test sessions on one machine (helpers, CI jobs) each get
their own addresses and their own host route, and neither removes the other's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.network.testnet import Upstream

pytestmark = [pytest.mark.root]
ANOTHER_SESSION = """
from tests.integration.network.testnet import upstream_network
with upstream_network() as up:
    print(up.metadata, up.a, flush=True)
"""


def _route(address: str) -> str:
    done = subprocess.run(["ip", "route", "show", f"{address}/32"], capture_output=True, text=True)
    return done.stdout.strip()


def test_a_second_session_gets_its_own_network_and_leaves_ours(upstream: Upstream) -> None:
    ours = _route(upstream.metadata)
    assert f"via {upstream.a}" in ours
    other = subprocess.run([sys.executable, "-c", ANOTHER_SESSION], capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert other.returncode == 0, other.stderr
    metadata, a = other.stdout.split()
    assert (metadata, a) != (upstream.metadata, upstream.a)
    assert metadata not in (upstream.metadata, upstream.a, upstream.b)
    assert _route(upstream.metadata) == ours  # its teardown left our route alone
    assert _route(metadata) == ""  # and removed its own
