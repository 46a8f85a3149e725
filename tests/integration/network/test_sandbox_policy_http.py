"""A sandbox's network policy through the HTTP API and the SDK (runc): created with an
allow-list, changed while it runs (``PUT /v1/sandboxes/{id}/network``), bytes counted in
the answer, a bad entry answered 400 naming the field, another tenant's sandbox 404. Only
loopback and the namespaces the tests create are ever addressed."""

from __future__ import annotations

import json
import signal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from sandpool.api import Sandpool
from sandpool.client import NotFound, Sandbox
from tests.integration.conftest import Sandbox as Box
from tests.integration.network.conftest import network_config
from tests.integration.network.probe import PROBE
from tests.integration.network.testnet import Upstream
from tests.integration.service.conftest import ServerProcess

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.timeout(300)]


def probe(box: Sandbox, target: str) -> str:
    result = box.exec(["python3", "-c", PROBE, target], timeout=90)
    assert result.exit_code == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return str(outcome[target])


def test_network_policy_over_http(sandbox: Box, upstream: Upstream,
                                  net_no_leaks: Box, net_sp: Sandpool) -> None:  # fmt: skip
    config = network_config(sandbox, upstream)
    server = ServerProcess(SimpleNamespace(base=sandbox.base, config_file=config))  # type: ignore[arg-type]
    try:
        with server.client(server.admin_key) as admin:
            for name in ("net-a", "net-b"):
                admin.create_tenant(name)
            key, other = admin.create_key("net-a").key, admin.create_key("net-b").key
        target = f"tcp:{upstream.a}:8080"
        with Sandbox.create(pool="performance", network="allow", url=server.url,
                            api_key=key, timeout=240) as box:  # fmt: skip
            assert (box.info.network, box.info.allow) == ("allow", ())
            assert probe(box, target) == "ECONNREFUSED"
            changed = box.set_network("allow", [f"{upstream.a}/32"])
            assert changed.allow == (f"{upstream.a}/32",)
            assert probe(box, target) == "ok"
            counted = box.refresh()
            assert counted.network_bytes_in and counted.network_bytes_out
            headers = {"Authorization": f"Bearer {key}"}
            bad = httpx.put(f"{server.url}/v1/sandboxes/{box.id}/network", headers=headers,
                            json={"allow": ["not a host!"]}, timeout=60)  # fmt: skip
            assert bad.status_code == 400 and bad.json()["message"].startswith("allow"), bad.text
            with pytest.raises(NotFound):
                Sandbox.connect(box.id, url=server.url, api_key=other).set_network("open")
            assert probe(box, target) == "ok"  # the refused change touched nothing
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
