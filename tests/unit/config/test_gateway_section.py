"""The ``gateway`` section (``sandpool server``) is validated like ``worker``: unknown keys
and bad values are named with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.errors import ConfigValidationError


def load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return LoadedConfig.load([str(path)], environ={})


def test_defaults(tmp_path: Path) -> None:
    gateway = load(tmp_path, "worker: {}\n").model.gateway
    assert (gateway.http.host, gateway.http.port, gateway.database) == ("127.0.0.1", 1994, "")
    assert gateway.tenant_quota.concurrent == 16


def test_values(tmp_path: Path) -> None:
    gateway = load(tmp_path, "gateway:\n  http: {host: 0.0.0.0, port: 8080}\n"
                             "  shutdownTimeout: 5\n  tenantQuota: {concurrent: 2, cpu: 4,"
                             " memory: 8Gi, createsPerSecond: 0.5}\n").model.gateway  # fmt: skip
    assert (gateway.http.port, gateway.shutdown_timeout) == (8080, 5.0)
    assert (gateway.tenant_quota.cpu, gateway.tenant_quota.memory) == (4.0, "8Gi")


@pytest.mark.parametrize(("text", "expected"), [
    ("gateway:\n  listen: x\n", "gateway.listen: unknown key 'listen'"),
    ("gateway:\n  http: {port: 70000}\n", "gateway.http.port: expected a whole number of at most"),
    ("gateway:\n  http: {port: '80'}\n", "gateway.http.port: expected a whole number"),
    ("gateway:\n  tenantQuota: {memory: lots}\n", "gateway.tenantQuota.memory: expected a size"),
    ("gateway:\n  tenantQuota: {createsPerSecnd: 1}\n",
     "did you mean 'createsPerSecond'?"),
    ("gateway:\n  shutdownTimeout: -1\n", "gateway.shutdownTimeout: expected a number"),
    ("gateway:\n  redis: localhost:6379\n", "gateway.redis: expected a redis://, rediss://"),
    ("gateway:\n  redis: 6379\n", "gateway.redis: expected a string"),
])  # fmt: skip
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigValidationError) as refused:
        load(tmp_path, text)
    assert expected in str(refused.value)


def test_redis_from_the_file_or_its_variable(tmp_path: Path) -> None:
    assert load(tmp_path, "worker: {}\n").model.gateway.redis == ""
    gateway = load(tmp_path, "gateway:\n  redis: unix:///run/redis.sock\n").model.gateway
    assert gateway.redis == "unix:///run/redis.sock"
    env = {"SANDPOOL_GATEWAY_REDIS": "redis://127.0.0.1:6379/1"}
    assert LoadedConfig.load([], env).model.gateway.redis == "redis://127.0.0.1:6379/1"
    with pytest.raises(ConfigValidationError) as refused:
        LoadedConfig.load([], {"SANDPOOL_GATEWAY_REDIS": "http://x"})
    assert "SANDPOOL_GATEWAY_REDIS" in str(refused.value)
