"""containerDefaults.network / .allow and worker.network: values, key paths, the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.config.resolved import ResolvedConfig
from sandpool.errors import ConfigValidationError

GOOD = """worker:
  network: {addressRange: 10.50.0.0/20, refuse: [10.96.0.0/12], dnsUpstream: "10.0.0.2:5353"}
  pools:
    p:
      containerDefaults: {network: allow, allow: [10.0.0.0/8, "pypi.org:443", "*.x.io"]}
"""


def _load(tmp_path: Path, text: str) -> ResolvedConfig:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    return LoadedConfig.load([str(path)], {}).resolved


def test_network_settings_reach_the_pool_and_survive_the_cache(tmp_path: Path) -> None:
    config = _load(tmp_path, GOOD)
    pool = config.pool("p")
    assert (pool.network, pool.allow) == ("allow", ("10.0.0.0/8", "pypi.org:443", "*.x.io"))
    settings = pool.network_settings
    assert settings.upstream() == ("10.0.0.2", 5353)
    assert "10.96.0.0/12" in settings.refused() and "169.254.0.0/16" in settings.refused()
    assert ResolvedConfig.from_json(config.to_json()) == config
    assert pool.public_dict()["containerDefaults"]["network"] == "allow"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("worker: {pools: {p: {containerDefaults: {network: internet}}}}",
         "worker.pools.p.containerDefaults.network: 'internet' is not allowed"),
        ("worker: {pools: {p: {containerDefaults: {network: allow, allow: ['a b']}}}}",
         "worker.pools.p.containerDefaults.allow.0: 'a b' is not CIDR"),
        ("worker: {pools: {p: {containerDefaults: {allow: [pypi.org]}}}}",
         "worker.pools.p.containerDefaults: allow entries need network: allow"),
        ("worker: {network: {addressRange: 10.0.0.0/31}}",
         "worker.network.addressRange: expected an IPv4 network of /30 or larger"),
        ("worker: {network: {refuse: ['fd00::/8']}}", "worker.network.refuse.0: expected an IPv4"),
        ("worker: {network: {dnsUpstream: resolver}}",
         "worker.network.dnsUpstream: expected an IP"),
    ],
)  # fmt: skip
def test_bad_network_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        _load(tmp_path, text)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems
