"""Policy parsing, the nftables text and the run's policy choice (no root, no kernel)."""

from __future__ import annotations

import pytest

from sandpool.errors import InvalidNetworkPolicy
from sandpool.network import nft
from sandpool.network.addresses import Lease
from sandpool.network.policy import AllowRule, parse_allow, parse_policy
from sandpool.network.run import run_policy
from sandpool.network.settings import ContainerNames, NetworkSettings
from sandpool.runtime.gvisor import HIDE_NET_SYSCTLS, joins_network


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("10.0.0.0/8", AllowRule(cidr="10.0.0.0/8")),
        ("10.1.2.3", AllowRule(cidr="10.1.2.3/32")),
        ("10.1.2.3:443", AllowRule(cidr="10.1.2.3/32", port=443)),
        ("PyPI.org.", AllowRule(domain="pypi.org")),
        ("*.example.com:8443", AllowRule(domain="*.example.com", port=8443)),
        ("1password.com", AllowRule(domain="1password.com")),
    ],
)
def test_allow_entries(entry: str, rule: AllowRule) -> None:
    assert parse_allow(entry) == rule


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("fd00:ec2::254", "IPv6"),
        ("10.0.0.1:0", "port"),
        ("10.0.0.1:http", "port"),
        ("a b", "is not CIDR"),
        ("*.", "is not CIDR"),
        ("1.2.3", "is not CIDR"),
        ("", "is not CIDR"),
    ],
)
def test_bad_allow_entries_name_the_fix(entry: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_allow(entry)


def test_wildcards_match_subdomains_only() -> None:
    rule = parse_allow("*.example.com")
    assert rule.matches_name("a.example.com.") and rule.matches_name("x.y.EXAMPLE.com")
    assert not rule.matches_name("example.com") and not rule.matches_name("badexample.com")


def test_allow_entries_need_mode_allow() -> None:
    with pytest.raises(ValueError, match="need network 'allow'"):
        parse_policy("open", ["10.0.0.0/8"])
    assert parse_policy("open").allows_name("anything.example")
    assert not parse_policy("allow").allows_name("anything.example")


class _Asks:
    def __init__(self, network: str | None, allow: tuple[str, ...] | None) -> None:
        self.network, self.allow = network, allow


class _Pool:
    network, allow, network_settings = "open", (), NetworkSettings()


def test_the_run_overrides_the_pool_and_allow_alone_means_allow() -> None:
    assert run_policy(_Asks(None, None), _Pool()).mode == "open"
    assert run_policy(_Asks("none", None), _Pool()).mode == "none"
    policy = run_policy(_Asks(None, ("pypi.org",)), _Pool())
    assert (policy.mode, policy.domains[0].domain) == ("allow", "pypi.org")
    with pytest.raises(InvalidNetworkPolicy, match="need network 'allow'"):
        run_policy(_Asks("none", ("pypi.org",)), _Pool())


def test_the_table_always_refuses_before_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    scripts: list[str] = []
    monkeypatch.setattr(nft, "_run", lambda script, check=True: scripts.append(script) or True)
    names = ContainerNames("sp-01234567-89abcdef01234567")
    policy = parse_policy("allow", ["10.1.0.0/16", "10.2.0.1:443"])
    refused = NetworkSettings(refuse=("10.96.0.0/12",)).refused()
    nft.create_table(names, Lease(0, "10.213.0.1", "10.213.0.2"), refused, policy, dns_port=53)
    text = scripts[0]
    assert names.veth == "spv89abcdef0123" and len(names.veth) <= 15
    assert "169.254.0.0/16" in text and "10.96.0.0/12" in text and "10.213.0.0/16" in text
    assert "elements = { 10.1.0.0/16 }" in text and "10.2.0.1/32 . 443" in text
    egress = text[text.index("chain sp_egress") :]
    assert egress.index("@refused4") < egress.index("jump sp_policy")
    assert 'iifname "spv89abcdef0123" ip daddr 10.213.0.1 udp dport 53 accept' in text
    nft.replace_policy(names, parse_policy("open"))
    assert "add rule inet sandpool_sp_01234567_89abcdef01234567 sp_policy accept" in scripts[1]


def test_gvisor_gets_netstack_only_for_a_prepared_namespace() -> None:
    prepared = {"linux": {"namespaces": [{"type": "network", "path": "/run/netns/x"}]}}
    fresh = {"linux": {"namespaces": [{"type": "network"}]}}
    assert joins_network(prepared) and not joins_network(fresh)
    assert HIDE_NET_SYSCTLS[0] == "unshare" and HIDE_NET_SYSCTLS[-1] == "sh"


def test_cli_flags() -> None:
    from sandpool.cli.run_cmd import RunUsageError, parse_run_args

    args = parse_run_args(["--allow", "10.0.0.0/8", "--allow", "pypi.org", "--", "true"])
    assert (args.network, args.allow) == (None, ("10.0.0.0/8", "pypi.org"))
    assert parse_run_args(["--network", "open", "true"]).network == "open"
    with pytest.raises(RunUsageError, match="is not CIDR") as info:
        parse_run_args(["--allow", "a b", "true"])
    assert info.value.exit_code == 125
    with pytest.raises(RunUsageError, match="'internet' is not one of"):
        parse_run_args(["--network", "internet", "true"])
