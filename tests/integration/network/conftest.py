"""Fixtures of the network policy tests: the test network, a config whose containers use it,
and a leak check of everything sandpool.network creates."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.network.settings import VETH_PREFIX
from sandpool.worker.ownership import owner_tag
from tests.integration.conftest import Sandbox
from tests.integration.network.testnet import Upstream, upstream_network


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    """The test network (servers and DNS), for the whole session."""
    with upstream_network() as up:
        yield up


def network_config(sandbox: Sandbox, up: Upstream) -> Path:
    """The session's pools, with worker.network pointing at the test network."""
    path = sandbox.base / "network-pools.yaml"
    n = up.index  # the session's own: another session's containers use another range
    text = sandbox.config_file.read_text().replace(
        "  pools:\n",
        f"  network:\n    addressRange: 10.213.{n}.0/24\n    dnsUpstream: '{up.dns}'\n"
        "    ipForward: false\n  pools:\n",
        1,
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def net_sp(sandbox: Sandbox, upstream: Upstream) -> Iterator[Sandpool]:
    """A Sandpool over the session's state dir whose containers may have a network."""
    config = LoadedConfig.load([str(network_config(sandbox, upstream))], {}).resolved
    with Sandpool(config) as pool:
        yield pool


def network_leftovers(state_dir: Path) -> list[str]:
    """Namespaces, veths, nftables tables, leases and DNS threads of this state dir."""
    tag = owner_tag(state_dir)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [f"netns {ln.split()[0]}" for ln in netns.splitlines() if f"sp-{tag}-" in ln]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += [f"nft {ln}" for ln in tables.splitlines() if f"sandpool_sp_{tag}_" in ln]
    leases = state_dir / "network" / "leases"
    found += [f"lease {p.name}" for p in leases.iterdir()] if leases.exists() else []
    found += [f"thread {t.name}" for t in threading.enumerate() if t.name.startswith("dns-spv")]
    return found


def veths(state_dir: Path) -> set[str]:
    """The host's sandpool-style veths now, but those whose other end is in another state
    dir's namespace (compared before/after: other test sessions run at the same time)."""
    others = "link-netns sandpool-sp-"  # ContainerNames.netns: sandpool-<container id>
    ours = f"{others}{owner_tag(state_dir)}-"
    links = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                           text=True, check=False).stdout  # fmt: skip
    return {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
            if line.split(":")[1].strip().startswith(VETH_PREFIX)
            and (others not in line or ours in line)}  # fmt: skip


@pytest.fixture
def net_no_leaks(sandbox: Sandbox, net_sp: Sandpool) -> Iterator[Sandbox]:
    """Fail the test if any network piece, or anything else, is left after it."""
    before = veths(sandbox.state_dir)
    yield sandbox
    net_sp.close()
    assert network_leftovers(sandbox.state_dir) == []
    assert veths(sandbox.state_dir) - before == set()
    assert sandbox.leftovers() == []
