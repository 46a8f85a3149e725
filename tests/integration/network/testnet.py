"""A test network the tests create on this machine, and nothing else: a network namespace
("upstream") joined to the host by a veth, holding TCP servers and an authoritative DNS
server for the zone ``.test``. sandpool containers reach it through the host (routed, NATed);
no test ever talks to an address outside this machine."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Upstream", "upstream_network"]

HOST, SERVER_A, SERVER_B = "10.231.{n}.1", "10.231.{n}.2", "10.231.{n}.3"
# Link-local, like 169.254.169.254, but no real service's; routed on the host to the session's
# own namespace (sandpool refuses all of 169.254.0.0/16).
METADATA_LIKE = "169.254.78.{m}"
INDEXES = 250
LOCKS = Path("/run/lock")

SERVERS = textwrap.dedent("""
    import socket, socketserver, sys, threading
    import dns.message, dns.rrset, dns.rcode
    class Hello(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"hello " + str(self.server.server_address).encode())
    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = daemon_threads = True
    for address in sys.argv[1].split(","):
        host, port = address.rsplit(":", 1)
        server = Server((host, int(port)), Hello)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    zone = dict(item.split("=") for item in sys.argv[2].split(","))
    dns_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns_sock.bind((sys.argv[3], 53))
    print("ready", flush=True)
    while True:
        wire, peer = dns_sock.recvfrom(4096)
        query = dns.message.from_wire(wire)
        reply = dns.message.make_response(query)
        name = query.question[0].name.to_text().rstrip(".")
        if name in zone and query.question[0].rdtype == 1:
            reply.answer.append(dns.rrset.from_text(name + ".", 5, "IN", "A", zone[name]))
        elif name not in zone:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        dns_sock.sendto(reply.to_wire(), peer)
""")


@dataclass(frozen=True)
class Upstream:
    """Addresses of the test network: ``a`` and ``b`` serve TCP on 8080 and 8081, ``host``
    is the host's own end (a host address that is not loopback), ``dns`` the resolver."""

    netns: str
    veth: str
    host: str
    a: str
    b: str
    metadata: str
    index: int  # this session's own: 10.231.N.0/29 here, sandpool's 10.213.N.0/24

    @property
    def dns(self) -> str:
        return self.a


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def zone(up: Upstream) -> dict[str, str]:
    """What the test DNS server answers (A records, TTL 5 s)."""
    return {"api.test": up.a, "x.wild.test": up.b, "other.test": up.a,
            "rebind.test": up.metadata, "hostile.test": up.host}  # fmt: skip


def _in_use(n: int) -> bool:
    """Whether a session of code without the index lock uses index ``n``."""
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True)
    return f" {HOST.format(n=n)}/" in addresses.stdout or any(
        line.split()[0] == METADATA_LIKE.format(m=n + 1) for line in routes.stdout.splitlines()
    )


@contextlib.contextmanager
def claimed_index() -> Iterator[int]:
    """A network index no other test session on this machine holds, held until the end
    (an exclusive lock on a file per index: released even if the session is SIGKILLed)."""
    for k in range(INDEXES):
        n = (os.getpid() + k) % INDEXES
        lock = (LOCKS / f"sandpool-testnet-{n}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        if _in_use(n):
            lock.close()
            continue
        with lock:
            yield n
        return
    raise RuntimeError(f"no free test network index (all {INDEXES} locked under {LOCKS})")


@contextlib.contextmanager
def upstream_network() -> Iterator[Upstream]:
    """Create the namespace, veth, routes and servers; remove them all afterwards."""
    with claimed_index() as n:
        up = Upstream(f"sptest-up-{os.getpid()}", f"sptu{os.getpid()}"[:15], HOST.format(n=n),
                      SERVER_A.format(n=n), SERVER_B.format(n=n), METADATA_LIKE.format(m=n + 1),
                      n)  # fmt: skip
        with _network(up) as ready:
            yield ready


@contextlib.contextmanager
def _network(up: Upstream) -> Iterator[Upstream]:
    _sh("ip", "netns", "add", up.netns)
    server: subprocess.Popen[bytes] | None = None
    try:
        _sh("ip", "link", "add", up.veth, "type", "veth", "peer", "name", "eth0", "netns", up.netns)
        _sh("ip", "addr", "add", f"{up.host}/29", "dev", up.veth)
        _sh("ip", "link", "set", up.veth, "up")
        _sh("ip", "route", "add", f"{up.metadata}/32", "via", up.a, "dev", up.veth)
        for line in (f"addr add {up.a}/29 dev eth0", f"addr add {up.b}/29 dev eth0",
                     f"addr add {up.metadata}/32 dev lo", "link set eth0 up", "link set lo up",
                     f"route add default via {up.host}"):  # fmt: skip
            _sh("ip", "-n", up.netns, *line.split())
        Path(f"/proc/sys/net/ipv4/conf/{up.veth}/forwarding").write_text("1")
        listen = ",".join(f"{h}:{p}" for h in (up.a, up.b, up.metadata) for p in (8080, 8081))
        names = ",".join(f"{k}={v}" for k, v in zone(up).items())
        argv = ["ip", "netns", "exec", up.netns, sys.executable, "-c", SERVERS, listen, names]
        server = subprocess.Popen([*argv, up.a], stdout=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        time.sleep(0.1)
        yield up
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "route", "del", f"{up.metadata}/32", "via", up.a, "dev", up.veth],
                       capture_output=True)  # fmt: skip
        subprocess.run(["ip", "link", "del", up.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", up.netns], capture_output=True)
