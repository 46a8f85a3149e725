"""Network policies of long-lived sandboxes (runc and gVisor): created with a policy, reaching
what it allows and nothing else, changed while they run, bytes counted, the host, a
metadata-like address and other sandboxes refused under every policy; nothing left behind,
even after a SIGKILLed ``sandpool serve`` and ``gc``. Only loopback and the namespaces the
tests create are ever addressed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.errors import SandboxError
from sandpool.network.addresses import find
from sandpool.sandbox import Sandbox as SandboxHandle
from tests.integration.conftest import Sandbox
from tests.integration.network.conftest import network_config, network_leftovers, veths
from tests.integration.network.probe import PROBE
from tests.integration.network.testnet import Upstream
from tests.integration.test_run_cli import SANDPOOL, Server

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
POOLS = [pytest.param("performance", marks=pytest.mark.runc, id="runc"),
         pytest.param("default", marks=pytest.mark.runsc, id="gvisor")]  # fmt: skip


def probe(box: SandboxHandle, *targets: str) -> dict[str, str]:
    result = box.exec(["python3", "-c", PROBE, *targets], timeout=90)
    assert result.exit_code == 0, (result.error, result.stderr)
    outcome: dict[str, str] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return outcome


def tcp(host: str, port: int = 8080) -> str:
    return f"tcp:{host}:{port}"


@pytest.mark.parametrize("pool", POOLS)
def test_sandbox_allow_by_port_and_domain(net_sp: Sandpool, upstream: Upstream,
                                          host_service: int, pool: str,
                                          net_no_leaks: Sandbox) -> None:  # fmt: skip
    """An allow-list sandbox reaches an address on the allowed port only, a domain's address
    only once its DNS filter resolved it (the grant outlives the exec), and never the host
    or a metadata-like address, even when its range is allowed."""
    allow = [f"{upstream.a}:8081", "*.wild.test", "169.254.0.0/16"]
    with net_sp.create_sandbox(pool, network="allow", allow=allow) as box:
        info = box.info()
        normalised = (f"{upstream.a}/32:8081", "*.wild.test", "169.254.0.0/16")
        assert (info.network, info.allow) == ("allow", normalised)
        seen = probe(box, tcp(upstream.a, 8081), tcp(upstream.a), tcp(upstream.b),
                     "dns:other.test", tcp(upstream.metadata),
                     tcp(upstream.host, host_service))  # fmt: skip
        assert seen[tcp(upstream.a, 8081)] == "ok"
        assert seen[tcp(upstream.a)] == "ECONNREFUSED"  # that address, another port
        assert seen[tcp(upstream.b)] == "ECONNREFUSED"  # not resolved yet
        assert seen["dns:other.test"] == "nxdomain"
        assert seen[tcp(upstream.metadata)] == "ECONNREFUSED"
        assert seen[tcp(upstream.host, host_service)] == "ECONNREFUSED"
        assert probe(box, "dns:x.wild.test")["dns:x.wild.test"] == upstream.b
        assert probe(box, tcp(upstream.b))[tcp(upstream.b)] == "ok"  # a later exec
        counted = box.info()
        assert counted.network_bytes_out and counted.network_bytes_in
        assert counted.network_bytes_out > (info.network_bytes_out or 0)


@pytest.mark.parametrize("pool", POOLS)
def test_sandbox_policy_changes_while_it_runs(net_sp: Sandpool, upstream: Upstream, pool: str,
                                              net_no_leaks: Sandbox) -> None:  # fmt: skip
    """Refused, then allowed by CIDR (the other address still refused), then refused again:
    each change through the manager applies to the next connection."""
    with net_sp.create_sandbox(pool, network="allow") as box:
        assert probe(box, tcp(upstream.a))[tcp(upstream.a)] == "ECONNREFUSED"
        changed = net_sp.sandboxes.set_network(box.id, "allow", [f"{upstream.a}/32"])
        assert (changed.network, changed.allow) == ("allow", (f"{upstream.a}/32",))
        seen = probe(box, tcp(upstream.a), tcp(upstream.b))
        assert (seen[tcp(upstream.a)], seen[tcp(upstream.b)]) == ("ok", "ECONNREFUSED")
        assert box.set_network("allow", []).allow == ()
        assert probe(box, tcp(upstream.a))[tcp(upstream.a)] == "ECONNREFUSED"
        box.set_network("open")
        assert probe(box, tcp(upstream.b))[tcp(upstream.b)] == "ok"
        with pytest.raises(Exception, match="cannot go to network 'none'"):
            box.set_network("none")


@pytest.mark.parametrize("pool", POOLS)
def test_sandbox_open_and_none_refuse_the_host_metadata_and_other_sandboxes(
    net_sp: Sandpool,
    sandbox: Sandbox,
    upstream: Upstream,
    host_service: int,
    pool: str,
    net_no_leaks: Sandbox,
) -> None:
    refused = [tcp(upstream.metadata), tcp(upstream.host, host_service)]
    with net_sp.create_sandbox(pool, network="open") as box, \
            net_sp.create_sandbox(pool, network="open") as other:  # fmt: skip
        other.start(["python3", "-c", LISTEN])
        peer = find(sandbox.state_dir, NET_RANGE.format(n=os.getpid() % 250), other.id)
        assert peer is not None
        time.sleep(1.0)  # its server listens
        seen = probe(box, tcp(upstream.a), tcp(peer.address, 9000), *refused)
        assert seen[tcp(upstream.a)] == "ok"
        assert seen[tcp(peer.address, 9000)] == "ECONNREFUSED"  # no sandbox-to-sandbox, fast
        assert all(seen[t] == "ECONNREFUSED" for t in refused), seen
        assert probe(other, tcp("127.0.0.1", 9000))[tcp("127.0.0.1", 9000)] == "ok"  # it ran
    with net_sp.create_sandbox(pool) as box:  # the default: none
        info = box.info()
        assert (info.network, info.network_bytes_in) == ("none", None)
        seen = probe(box, tcp(upstream.a), *refused)
        assert all(v in ("ENETUNREACH", "EHOSTUNREACH") for v in seen.values()), seen


NET_RANGE = "10.213.{n}.0/24"  # network_config's addressRange
LISTEN = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
"""


def _cli(config: Path, socket: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SANDPOOL_CONFIG": str(config), "SANDPOOL_SOCKET": str(socket)}
    return subprocess.run([SANDPOOL, "sandbox", *args], capture_output=True, env=env,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("pool", POOLS)
def test_sandbox_network_cli_then_sigkilled_server_and_gc(
    sandbox: Sandbox, net_sp: Sandpool, upstream: Upstream, pool: str, tmp_path: Path
) -> None:
    """`sandbox create --network/--allow`, `sandbox network`, `inspect` through a real
    `sandpool serve`; bad flags are one line and 125; after the server is SIGKILLed, its
    sandbox's namespace, veth, table and lease are left, and `gc` removes them all.
    (`sandpool sandbox` runs the bad flags' checks in the client: usage errors, 125.)"""
    config, socket = network_config(sandbox, upstream), tmp_path / "serve.sock"
    server = Server(socket, tmp_path / "serve.log")
    try:
        done = _cli(config, socket, "create", "--pool", pool, "--allow", f"{upstream.a}:8080")
        assert done.returncode == 0, done.stderr
        box = done.stdout.decode().strip()
        code = f"import socket; socket.create_connection(('{upstream.b}', 8080), timeout=3)"
        assert _cli(config, socket, "exec", box, "python3", "-c", code).returncode == 1
        assert _cli(config, socket, "network", box, "--allow", upstream.b).returncode == 0
        assert _cli(config, socket, "exec", box, "python3", "-c", code).returncode == 0
        shown = json.loads(_cli(config, socket, "inspect", box, "--json").stdout)
        assert (shown["network"], shown["allow"]) == ("allow", [f"{upstream.b}/32"])
        assert shown["networkBytesOut"] > 0
        exposed = _cli(config, socket, "expose", box, "9000")
        assert exposed.returncode == 0 and exposed.stdout.startswith(b"127.0.0.1:"), exposed
        assert _cli(config, socket, "expose", box, "0").returncode == 125
        for bad, named in ((("create", "--pool", pool, "--allow", "not a host"), b"--allow"),
                           (("network", box, "--allow", "::1"), b"IPv6"),
                           (("network", box), b"--network")):  # fmt: skip
            wrong = _cli(config, socket, *bad)
            error = [line for line in wrong.stderr.splitlines() if line.startswith(b"Error")]
            assert wrong.returncode == 125 and len(error) == 1 and named in error[0], wrong.stderr
            assert b"Traceback" not in wrong.stderr
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    assert network_leftovers(sandbox.state_dir) != []  # the crash left it behind ...
    net_sp.gc()
    assert network_leftovers(sandbox.state_dir) == []  # ... and gc removed it all
    assert sandbox.leftovers() == []


@pytest.fixture(scope="module")
def host_service(upstream: Upstream) -> Iterator[int]:
    """A TCP service of the host itself, on its end of the test veth (port 8091)."""
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((upstream.host, 8091))
    server.listen(16)
    yield 8091
    server.close()


@pytest.mark.parametrize("pool", POOLS)
def test_adopted_sandbox_keeps_its_dns_filter(sandbox: Sandbox, net_sp: Sandpool,
                                              upstream: Upstream, pool: str,
                                              tmp_path: Path) -> None:  # fmt: skip
    """A SIGKILLed server's networked sandbox, adopted by the next server, resolves its
    allowed names again (its DNS filter now runs there) and reaches what they resolve to."""
    config, socket = network_config(sandbox, upstream), tmp_path / "serve.sock"
    first = Server(socket, tmp_path / "first.log")
    try:
        done = _cli(config, socket, "create", "--pool", pool, "--allow", "api.test")
        assert done.returncode == 0, done.stderr
        box = done.stdout.decode().strip()
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    second = Server(socket, tmp_path / "second.log")
    try:
        done = _cli(config, socket, "exec", box, "python3", "-c", PROBE, "dns:api.test",
                    tcp(upstream.a), tcp(upstream.b))  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert seen == {"dns:api.test": upstream.a, tcp(upstream.a): "ok",
                        tcp(upstream.b): "ECONNREFUSED"}  # fmt: skip
        assert _cli(config, socket, "rm", box).returncode == 0
    finally:
        assert second.stop() == 0, second.log.read_text()
    assert network_leftovers(sandbox.state_dir) == []
    assert sandbox.leftovers() == []


def _warm_config(sandbox: Sandbox, upstream: Upstream, runtime: str) -> Path:
    """The network config plus a pool whose default is an allow-list, one sandbox warm."""
    path = network_config(sandbox, upstream)
    extra = f"      containerRuntimeConfig:\n        gvisorRoot: {sandbox.gvisor_root}\n"
    path.write_text(path.read_text() + (
        f"    netwarm:\n      containerRuntime: {runtime}\n"
        f"{extra if runtime == 'gvisor' else ''}"
        f"      containerDefaults:\n        network: allow\n        allow: ['{upstream.a}']\n"
        "      warmPool:\n        size: 1\n"))  # fmt: skip
    return path


@pytest.mark.parametrize(
    "runtime",
    [pytest.param("runc", marks=pytest.mark.runc), pytest.param("gvisor", marks=pytest.mark.runsc)],
)
def test_pool_default_policy_and_warm_sandboxes(sandbox: Sandbox, upstream: Upstream,
                                                runtime: str) -> None:  # fmt: skip
    """A pool's containerDefaults.network/allow apply to its sandboxes, warm ones included:
    a create with the default policy claims the warm one, another policy starts cold."""
    config = LoadedConfig.load([str(_warm_config(sandbox, upstream, runtime))], {}).resolved
    before = veths(sandbox.state_dir)
    with Sandpool(config) as sp:
        assert sp.sandboxes.wait_warm(90)
        with sp.create_sandbox("netwarm") as box:
            assert (box.info().network, box.info().allow) == ("allow", (f"{upstream.a}/32",))
            seen = probe(box, tcp(upstream.a), tcp(upstream.b))
            assert (seen[tcp(upstream.a)], seen[tcp(upstream.b)]) == ("ok", "ECONNREFUSED")
        with sp.create_sandbox("netwarm", network="open") as box:
            assert box.info().network == "open"
            assert probe(box, tcp(upstream.b))[tcp(upstream.b)] == "ok"
        (stats,) = sp.sandboxes.warm_stats()
        assert (stats.claims, stats.misses) == (1, 1)
    assert network_leftovers(sandbox.state_dir) == []
    assert veths(sandbox.state_dir) - before == set()
    assert sandbox.leftovers() == []


def _greeting(address: tuple[str, int]) -> str:
    """What a TCP server at ``address`` says first ("hello…"), else the errno name."""
    import errno
    import socket

    try:
        with socket.create_connection(address, timeout=5) as conn:
            return conn.recv(64).decode()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


@pytest.mark.parametrize("pool", POOLS)
def test_exposed_port_is_reachable_from_the_host_and_nothing_else_is(
    net_sp: Sandpool, sandbox: Sandbox, pool: str, net_no_leaks: Sandbox
) -> None:
    """A sandbox that may reach nothing serves on 9000: exposed, the host reaches it on
    loopback; a plain host socket to its address is refused; after it ends, so is the port.
    A sandbox without a network, or a bad port, is one clear error."""
    with net_sp.create_sandbox(pool, network="allow") as box:
        box.start(["python3", "-c", LISTEN])
        host, port = box.expose_port(9000)
        assert host == "127.0.0.1"
        deadline = time.time() + 30
        while _greeting((host, port)) != "hello" and time.time() < deadline:
            time.sleep(0.3)  # its server starts listening
        assert _greeting((host, port)) == "hello"
        assert box.expose_port(9000) == (host, port)  # the same forward again
        assert box.info().to_json()["ports"] == [{"port": 9000, "host": host, "hostPort": port}]
        own = find(sandbox.state_dir, NET_RANGE.format(n=os.getpid() % 250), box.id)
        assert own is not None
        assert _greeting((own.address, 9000)) == "ECONNREFUSED"  # not sandpool's forward
        with pytest.raises(SandboxError, match="not a TCP port"):
            box.expose_port(70000)
    assert _greeting((host, port)) == "ECONNREFUSED"
    with net_sp.create_sandbox(pool) as box, pytest.raises(SandboxError, match="no network"):
        box.expose_port(9000)
