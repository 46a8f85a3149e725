"""One container's nftables table (family ``inet``, named after the container): the rules on
the host side of its veth, where nothing in the container can reach them.

Always, whatever the policy: nothing from the veth reaches the host itself (``input``: only
the DNS filter's port on the gateway address, and replies), no host process opens anything
towards the container but sandpool's own port forwards (``output``: their sockets carry
``INBOUND_MARK``; ``network.inbound``), no IPv6 leaves, no spoofed source, nothing
goes to another sandbox's veth or to a refused range; nothing enters the veth unasked (TCP
gets a reset, the rest ICMP admin-prohibited, whichever sandbox's table sees it first). Then
the ``policy`` chain: ``accept`` (open) or the allow sets (allow). A policy change rewrites
that chain and the sets in one transaction; every packet is checked, so it takes effect at
once, for open connections too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from sandpool.errors import NetworkSetupFailed
from sandpool.network.addresses import Lease
from sandpool.network.policy import NetworkPolicy
from sandpool.network.settings import INBOUND_MARK, VETH_PREFIX, ContainerNames

__all__ = ["add_resolved", "create_table", "delete_table", "replace_policy"]

NFT = "nft"
SETS = ("allow4", "allow4_port", "dns4", "dns4_port")  # what a policy change empties
REJECT = "meta l4proto tcp reject with tcp reset\n    reject with icmpx admin-prohibited"


def _run(script: str, *, check: bool = True) -> bool:
    try:
        done = subprocess.run([NFT, "-f", "-"], input=script.encode(), capture_output=True,
                              timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupFailed(f"nft could not run: {exc}",
                                 hint="install nftables (setup.sh does)") from exc  # fmt: skip
    if done.returncode != 0 and check:
        error = done.stderr.decode(errors="replace").strip().splitlines()
        raise NetworkSetupFailed(f"nft refused the rules: {error[0] if error else done.returncode}")
    return done.returncode == 0


def _elements(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return f"elements = {{ {listed} }}" if listed else ""


def _policy_rules(policy: NetworkPolicy) -> list[str]:
    if policy.mode == "open":
        return ["accept"]
    return [
        "ip daddr @allow4 accept",
        "meta l4proto { tcp, udp } ip daddr . th dport @allow4_port accept",
        "ip daddr @dns4 accept",
        "meta l4proto { tcp, udp } ip daddr . th dport @dns4_port accept",
    ]


def _allow_sets(policy: NetworkPolicy) -> tuple[list[str], list[str]]:
    plain = [r.cidr for r in policy.allow if r.cidr and r.port is None]
    ported = [f"{r.cidr} . {r.port}" for r in policy.allow if r.cidr and r.port is not None]
    return plain, ported


def _sets(refused: tuple[str, ...], policy: NetworkPolicy) -> str:
    plain, ported = (_elements(items) for items in _allow_sets(policy))
    return f"""
  set refused4 {{ type ipv4_addr; flags interval; auto-merge; {_elements(refused)} }}
  set allow4 {{ type ipv4_addr; flags interval; auto-merge; {plain} }}
  set allow4_port {{ type ipv4_addr . inet_service; flags interval; {ported} }}
  set dns4 {{ type ipv4_addr; flags timeout; }}
  set dns4_port {{ type ipv4_addr . inet_service; flags timeout; }}"""


def create_table(names: ContainerNames, lease: Lease, refused: tuple[str, ...],
                 policy: NetworkPolicy, *, dns_port: int | None) -> None:  # fmt: skip
    """Create the container's table (fails if it exists: ids are unique)."""
    veth, me, gw = names.veth, lease.address, lease.gateway
    dns = f'iifname "{veth}" ip daddr {gw} udp dport {dns_port} accept' if dns_port else ""
    _run(f"""table inet {names.table} {{{_sets(refused, policy)}
  chain input {{ type filter hook input priority filter - 10; policy accept;
    {dns}
    iifname "{veth}" ct state established,related accept
    iifname "{veth}" jump sp_refuse
  }}
  chain output {{ type filter hook output priority filter - 10; policy accept;
    oifname "{veth}" ct state new meta mark != {INBOUND_MARK:#x} jump sp_refuse
  }}
  chain forward {{ type filter hook forward priority filter - 10; policy accept;
    iifname "{veth}" jump sp_egress
    oifname "{veth}" ct state established,related accept
    oifname "{veth}" jump sp_refuse
  }}
  chain sp_egress {{
    meta nfproto != ipv4 drop
    ip saddr != {me} drop
    oifname "{VETH_PREFIX}*" jump sp_refuse
    ip daddr @refused4 jump sp_refuse
    jump sp_policy
    jump sp_refuse
  }}
  chain sp_policy {{
    {chr(10).join(_policy_rules(policy))}
  }}
  chain sp_refuse {{
    {REJECT}
  }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;
    ip saddr {me} oifname != "{veth}" masquerade
  }}
}}
""")


def replace_policy(names: ContainerNames, policy: NetworkPolicy) -> None:
    """Swap the policy chain and the allow sets in one transaction (DNS grants are dropped:
    names still allowed are opened again at their next lookup)."""
    table = f"inet {names.table}"
    lines = [f"flush chain {table} sp_policy"]
    lines += [f"flush set {table} {name}" for name in SETS]
    plain, ported = _allow_sets(policy)
    for name, items in (("allow4", plain), ("allow4_port", ported)):
        if items:
            lines.append(f"add element {table} {name} {{ {', '.join(items)} }}")
    lines += [f"add rule {table} sp_policy {rule}" for rule in _policy_rules(policy)]
    _run("\n".join(lines) + "\n")


def add_resolved(names: ContainerNames, addresses: list[str], ports: list[int | None],
                 ttl: int) -> None:  # fmt: skip
    """Open ``addresses`` (each on every port in ``ports``; None: any port) for ``ttl`` s; an
    address already open gets the new timeout (add, delete, add: one transaction)."""
    lines = []
    for address in addresses:
        for port in ports:
            key, name = (address, "dns4") if port is None else (f"{address} . {port}", "dns4_port")
            element = f"inet {names.table} {name} {{ {key} timeout {ttl}s }}"
            bare = f"inet {names.table} {name} {{ {key} }}"
            lines += [f"add element {element}", f"delete element {bare}", f"add element {element}"]
    if lines:
        _run("\n".join(lines) + "\n")


def delete_table(names: ContainerNames) -> None:
    """Remove the container's table, if it is there."""
    _run(f"delete table inet {names.table}\n", check=False)
