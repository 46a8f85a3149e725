"""A container's DNS filter: a UDP resolver on its gateway address that answers only names
its policy allows, asks the upstream resolver for them, drops answers in refused ranges (no
DNS rebinding to the host, metadata or other sandboxes) and AAAA records (no IPv6), and opens
the addresses it hands out in that container's nftables sets for their TTL (at least
``MIN_GRANT_S``, so a short TTL does not cut a connection mid-way).

Wire format by dnspython (typed, maintained; no hand parsing). One daemon thread per
container, in the process that owns the container; ``stop`` ends it and closes the socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from sandpool.errors import NetworkSetupFailed, SandpoolError
from sandpool.network import nft
from sandpool.network.policy import NetworkPolicy
from sandpool.network.settings import DNS_PORT, ContainerNames

__all__ = ["DnsFilter"]

log = logging.getLogger(__name__)
MIN_GRANT_S = 30
UPSTREAM_TIMEOUT_S = 3.0


class DnsFilter:
    """Serves one container's queries until ``stop``; the policy is read per query."""

    def __init__(self, names: ContainerNames, address: str, policy: Callable[[], NetworkPolicy],
                 upstream: tuple[str, int], refused: tuple[str, ...]) -> None:  # fmt: skip
        self.names, self.policy, self.upstream = names, policy, upstream
        self.refused = [ipaddress.ip_network(r) for r in refused]
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((address, DNS_PORT))
        except OSError as exc:
            self.sock.close()
            where = f"{address}:{DNS_PORT}"
            raise NetworkSetupFailed(f"the DNS filter cannot listen on {where}: {exc}") from exc
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name=f"dns-{names.veth}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close the socket."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recvfrom at once
        self._thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                reply = self.answer(wire)
            except Exception:  # one bad packet must not end the filter
                log.exception("dns filter %s: query failed", self.names.veth)
                continue
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply, peer)

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query (None: not a query worth answering)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            return _reply(query, dns.rcode.FORMERR)
        question = query.question[0]
        name, policy = question.name.to_text(), self.policy()
        if not policy.allows_name(name):
            return _reply(query, dns.rcode.NXDOMAIN)
        if question.rdtype == dns.rdatatype.AAAA:
            return _reply(query, dns.rcode.NOERROR)  # no IPv6 in a sandbox
        try:
            response = dns.query.udp(query, self.upstream[0], port=self.upstream[1],
                                     timeout=UPSTREAM_TIMEOUT_S)  # fmt: skip
        except (dns.exception.DNSException, OSError):
            return _reply(query, dns.rcode.SERVFAIL)
        self._filter(response, name, policy)
        return response.to_wire()

    def _filter(self, response: dns.message.Message, name: str, policy: NetworkPolicy) -> None:
        """Drop refused and IPv6 answers; open what is left for this container."""
        kept, addresses, ttl = [], [], MIN_GRANT_S
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.AAAA:
                continue
            if rrset.rdtype == dns.rdatatype.A:
                good = [rd for rd in rrset if not self._refused(rd.address)]
                if not good:
                    continue
                rrset = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, good)
                addresses += [rd.address for rd in good]
                ttl = max(ttl, rrset.ttl)
            kept.append(rrset)
        response.answer = kept
        if addresses and policy.mode == "allow":
            self._grant(addresses, name, policy, ttl)

    def _grant(self, addresses: list[str], name: str, policy: NetworkPolicy, ttl: int) -> None:
        ports = sorted({r.port for r in policy.domains if r.matches_name(name)}, key=str)
        if None in ports:
            ports = [None]
        try:
            nft.add_resolved(self.names, addresses, ports, ttl)
        except SandpoolError:
            log.warning("dns filter %s: could not open %s", self.names.veth, addresses)

    def _refused(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.refused)


def _reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    return reply.to_wire()
