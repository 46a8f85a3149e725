"""Host-wide network settings (``worker.network``) and the names of one container's pieces."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALWAYS_REFUSED",
    "DEFAULT_RANGE",
    "DNS_PORT",
    "INBOUND_MARK",
    "ContainerNames",
    "NetworkSettings",
    "default_upstream",
]

DEFAULT_RANGE = "10.213.0.0/16"
# Refused under every policy: the host's own loopback, link-local and cloud metadata
# (169.254.169.254 and the like), "this network", multicast and broadcast. IPv6 (including
# fd00:ec2::254) never leaves a sandbox: it has no IPv6 address or route, and the host drops
# every IPv6 packet from its veth.
ALWAYS_REFUSED = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
DNS_PORT = 53  # the DNS filter's, on each container's gateway address
INBOUND_MARK = 0x53504E31  # SO_MARK of sandpool's port forwards: the only host sockets that
# may open connections into a container (``network.inbound``)
VETH_PREFIX = "spv"  # host-side veths; the forward chain never sends one sandbox's to another


@dataclass(frozen=True)
class NetworkSettings:
    """The worker's network settings: where container addresses come from, what else is
    refused (Kubernetes pod and service ranges), the DNS filter's upstream resolver, and
    whether sandpool may turn on ``net.ipv4.ip_forward`` (as Docker does)."""

    address_range: str = DEFAULT_RANGE
    refuse: tuple[str, ...] = ()
    dns_upstream: str = ""  # "IP" or "IP:PORT"; empty: the host's first nameserver
    ip_forward: bool = True

    def refused(self) -> tuple[str, ...]:
        """Every refused IPv4 range: the fixed ones, the sandboxes' own range, the extras."""
        return (*ALWAYS_REFUSED, self.address_range, *self.refuse)

    def upstream(self) -> tuple[str, int]:
        """The DNS filter's upstream resolver as (address, port)."""
        text = self.dns_upstream or default_upstream()
        host, _, port = text.partition(":") if text.count(":") == 1 else (text, "", "")
        return str(ipaddress.ip_address(host)), int(port or 53)


def default_upstream(resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The host's first IPv4 nameserver (the DNS filter's upstream when none is set)."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and "." in parts[1]:
            return parts[1]
    return "127.0.0.53"


@dataclass(frozen=True)
class ContainerNames:
    """The kernel names of one container's network pieces, all derived from its id (so a
    clean-up after a crash finds them from the id alone)."""

    container_id: str

    @property
    def _suffix(self) -> str:
        return self.container_id.rsplit("-", 1)[-1][:12]

    @property
    def netns(self) -> str:
        """``ip netns`` name (``/run/netns/<name>``)."""
        return f"sandpool-{self.container_id}"

    @property
    def netns_path(self) -> str:
        """The bind-mounted namespace the OCI spec points at."""
        return f"/run/netns/{self.netns}"

    @property
    def veth(self) -> str:
        """The host-side veth (15 characters at most: the kernel's limit)."""
        return f"{VETH_PREFIX}{self._suffix}"

    @property
    def table(self) -> str:
        """The container's own nftables table (family ``inet``)."""
        return f"sandpool_{self.container_id.replace('-', '_')}"
