"""Network policies: ``none``, ``allow`` (an allow-list) or ``open``, and their allow rules.

An allow rule is one of ``CIDR`` (``10.0.0.0/8``, a bare address is a /32), ``HOST:PORT``
(an address or CIDR with a port: TCP and UDP to that port only) or ``DOMAIN[:PORT]``
(``pypi.org``, ``*.example.com``: names the sandbox's DNS filter answers; the addresses it
resolves are opened for their TTL). Only IPv4 is offered: a sandbox has no IPv6 route.
Parsing is pure and shared by the configuration, the CLI and the API.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["MODES", "AllowRule", "NetworkPolicy", "parse_allow", "parse_policy"]

MODES = ("none", "allow", "open")
Mode = Literal["none", "allow", "open"]
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"(\*\.)?({_LABEL}\.)*{_LABEL}\.?")
ALLOW_FORMS = "CIDR (10.0.0.0/8), HOST:PORT (10.1.2.3:443) or DOMAIN (pypi.org, *.example.com)"


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry: a network (``cidr``) or a domain pattern, with an optional port."""

    cidr: str | None = None
    domain: str | None = None  # lower case, no trailing dot; may start with "*."
    port: int | None = None

    def matches_name(self, name: str) -> bool:
        """Whether the DNS name ``name`` is allowed by this (domain) rule."""
        if self.domain is None:
            return False
        name = name.lower().rstrip(".")
        if self.domain.startswith("*."):
            return name.endswith(self.domain[1:])
        return name == self.domain

    def text(self) -> str:
        """The rule as the user writes it."""
        where = self.cidr or self.domain or ""
        return f"{where}:{self.port}" if self.port is not None else where


@dataclass(frozen=True)
class NetworkPolicy:
    """What one container may reach; ``none`` has no network at all (today's default)."""

    mode: Mode = "none"
    allow: tuple[AllowRule, ...] = ()

    @property
    def networked(self) -> bool:
        """Whether the container gets an interface (``allow`` or ``open``)."""
        return self.mode != "none"

    @property
    def domains(self) -> tuple[AllowRule, ...]:
        """The domain rules (what the DNS filter answers in ``allow``)."""
        return tuple(r for r in self.allow if r.domain is not None)

    def allows_name(self, name: str) -> bool:
        """Whether the DNS filter answers ``name`` (every name under ``open``)."""
        return self.mode == "open" or any(r.matches_name(name) for r in self.allow)

    def to_json(self) -> dict[str, object]:
        """``{"network": mode, "allow": [rule text, ...]}``."""
        return {"network": self.mode, "allow": [r.text() for r in self.allow]}


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be a whole number from 1 to 65535")
    return int(text)


def _network(text: str) -> str | None:
    """The IPv4 network ``text`` names (``10.0.0.0/8`` or ``10.1.2.3``), else None."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if net.version != 4:
        raise ValueError(f"{text!r}: IPv6 egress is not offered (a sandbox has IPv4 only)")
    return str(net)


def parse_allow(entry: str) -> AllowRule:
    """One ``--allow`` / ``containerDefaults.allow`` entry; ValueError names the fix."""
    text = entry.strip()
    host, port = text, None
    if text.count(":") == 1:  # HOST:PORT (an IPv6 address has more colons: refused below)
        host, _, port_text = text.partition(":")
        port = _port(port_text, entry)
    if not host:
        raise ValueError(f"{entry!r} is not {ALLOW_FORMS}")
    network = _network(host) if any(c.isdigit() for c in host[:1]) or ":" in host else None
    if network is not None:
        return AllowRule(cidr=network, port=port)
    if _DOMAIN.fullmatch(host) is None or host.replace(".", "").isdigit():
        raise ValueError(f"{entry!r} is not {ALLOW_FORMS}")
    return AllowRule(domain=host.lower().rstrip("."), port=port)


def parse_policy(mode: str, allow: tuple[str, ...] | list[str] = ()) -> NetworkPolicy:
    """A policy from its mode and allow entries; ValueError names the fix."""
    if mode not in MODES:
        raise ValueError(f"network {mode!r} is not one of: {', '.join(MODES)}")
    if allow and mode != "allow":
        raise ValueError(f"allow entries need network 'allow' (network is {mode!r})")
    return NetworkPolicy(mode, tuple(parse_allow(e) for e in allow))  # type: ignore[arg-type]
