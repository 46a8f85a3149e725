"""The ``gateway`` section from ``SANDPOOL_GATEWAY_*`` variables, and ``gateway.onShutdown``
(issue 16: the server's shutdown, configured and strictly validated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.errors import ConfigValidationError


def test_gateway_keys_come_from_sandpool_gateway_variables() -> None:
    env = {"SANDPOOL_GATEWAY_ONSHUTDOWN": "keep", "SANDPOOL_GATEWAY_HTTP_PORT": "8081",
           "SANDPOOL_GATEWAY_TENANTQUOTA_CONCURRENT": "32"}  # fmt: skip
    gateway = LoadedConfig.load([], env).model.gateway
    assert (gateway.on_shutdown, gateway.http.port) == ("keep", 8081)
    assert gateway.tenant_quota.concurrent == 32


def test_on_shutdown_is_terminate_unless_the_file_says_keep(tmp_path: Path) -> None:
    assert LoadedConfig.load([], {}).model.gateway.on_shutdown == "terminate"
    path = tmp_path / "c.yaml"
    path.write_text("gateway:\n  onShutdown: keep\n")
    assert LoadedConfig.load([str(path)], {}).model.gateway.on_shutdown == "keep"


@pytest.mark.parametrize(
    ("env", "needle"),
    [({"SANDPOOL_GATEWAY_ONSHUTDOWN": "maybe"}, "SANDPOOL_GATEWAY_ONSHUTDOWN"),
     ({"SANDPOOL_GATEWAY_ONSHUTDOWN": "true"}, "allowed values: terminate, keep"),
     ({"SANDPOOL_GATEWAY_NOPE": "1"}, "SANDPOOL_GATEWAY_NOPE: no configuration key"),
     ({"SANDPOOL_GATEWAY_HTTP_PORT": "70000"}, "gateway.http.port")],
)  # fmt: skip
def test_a_bad_gateway_variable_is_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        LoadedConfig.load([], env)
    assert needle in str(caught.value)
