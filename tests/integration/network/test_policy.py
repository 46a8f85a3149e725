"""Network policies on real containers (runc and gVisor): a container in the test network
reaches what its policy allows and nothing else; the host, a metadata-like address and other
ranges are refused under every policy; a running container's policy can change; nothing is
left behind, even after a SIGKILLed owner and ``gc``. Only loopback and the namespaces the
tests create are ever addressed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.worker.container import ContainerRun
from sandpool.worker.request import RunResult
from tests.integration.conftest import Sandbox
from tests.integration.network.conftest import network_config, network_leftovers
from tests.integration.network.probe import PROBE
from tests.integration.network.testnet import Upstream

pytestmark = [pytest.mark.root]
POOLS = [pytest.param("performance", marks=pytest.mark.runc, id="runc"),
         pytest.param("default", marks=pytest.mark.runsc, id="gvisor")]  # fmt: skip


def probe(
    sp: Sandpool, pool: str, targets: list[str], **policy: object
) -> tuple[dict[str, str], RunResult]:
    result = sp.run(pool, ["python3", "-c", PROBE, *targets], timeout=90, **policy)  # type: ignore[arg-type]
    assert result.exit_code == 0, (result.error, result.stderr)
    assert result.stdout is not None
    return json.loads(result.stdout.decode().strip().splitlines()[-1]), result


def tcp(host: str, port: int = 8080) -> str:
    return f"tcp:{host}:{port}"


@pytest.mark.parametrize("pool", POOLS)
def test_none_is_unchanged(net_sp: Sandpool, upstream: Upstream, pool: str,
                           net_no_leaks: Sandbox) -> None:  # fmt: skip
    """The default: no interface but loopback, nothing reachable, no bytes counted."""
    seen, result = probe(net_sp, pool, [tcp(upstream.a), "dns:api.test"])
    assert seen[tcp(upstream.a)] in ("ENETUNREACH", "EHOSTUNREACH")
    assert seen["dns:api.test"] != upstream.a
    assert (result.network, result.network_bytes_in) == ("none", None)


@pytest.mark.parametrize("pool", POOLS)
def test_open_reaches_the_network_but_never_the_host_or_metadata(
    net_sp: Sandpool, upstream: Upstream, host_service: int, pool: str, net_no_leaks: Sandbox
) -> None:
    targets = [tcp(upstream.a), tcp(upstream.b, 8081), "dns:other.test", "dns:rebind.test",
               tcp(upstream.host, host_service), tcp(upstream.metadata)]  # fmt: skip
    seen, result = probe(net_sp, pool, targets, network="open")
    assert seen[tcp(upstream.a)] == "ok" and seen[tcp(upstream.b, 8081)] == "ok"
    assert seen["dns:other.test"] == upstream.a
    assert seen["dns:rebind.test"] != upstream.metadata  # the DNS filter dropped that answer
    assert seen[tcp(upstream.host, host_service)] == "ECONNREFUSED"  # the host's own service
    assert seen[tcp(upstream.metadata)] == "ECONNREFUSED"
    assert result.network == "open"
    assert result.network_bytes_out and result.network_bytes_in


@pytest.mark.parametrize("pool", POOLS)
def test_allow_by_cidr_and_by_port(net_sp: Sandpool, upstream: Upstream, host_service: int,
                                   pool: str, net_no_leaks: Sandbox) -> None:  # fmt: skip
    allow = [f"{upstream.a}/32", f"{upstream.b}:8081", "169.254.0.0/16"]
    targets = [tcp(upstream.a), tcp(upstream.a, 8081), tcp(upstream.b, 8081),
               tcp(upstream.b), tcp(upstream.metadata), tcp(upstream.host, host_service),
               "dns:api.test"]  # fmt: skip
    seen, _ = probe(net_sp, pool, targets, network="allow", allow=allow)
    assert seen[tcp(upstream.a)] == seen[tcp(upstream.a, 8081)] == "ok"  # the whole address
    assert seen[tcp(upstream.b, 8081)] == "ok"
    assert seen[tcp(upstream.b)] == "ECONNREFUSED"  # that address, another port
    assert seen[tcp(upstream.metadata)] == "ECONNREFUSED"  # even when allowed
    assert seen[tcp(upstream.host, host_service)] == "ECONNREFUSED"
    assert seen["dns:api.test"] == "nxdomain"  # no domain rule: the DNS filter answers nothing


@pytest.mark.parametrize("pool", POOLS)
def test_allow_by_domain(net_sp: Sandpool, upstream: Upstream, pool: str,
                         net_no_leaks: Sandbox) -> None:  # fmt: skip
    """Addresses open only once the DNS filter handed them out, on the rule's port; names
    outside the list do not resolve; an answer in a refused range is dropped."""
    allow = ["api.test", "*.wild.test:8081", "rebind.test"]
    targets = [tcp(upstream.b, 8081), tcp(upstream.a), "dns:api.test", tcp(upstream.a),
               "dns:x.wild.test", tcp(upstream.b, 8081), tcp(upstream.b), "dns:other.test",
               "dns:rebind.test", tcp(upstream.metadata)]  # fmt: skip
    seen, _ = probe(net_sp, pool, targets, allow=allow)
    assert seen[tcp(upstream.a)] == "ok"  # the dict keeps the last outcome: after resolving
    assert seen["dns:api.test"] == upstream.a
    assert seen["dns:x.wild.test"] == upstream.b
    assert seen[tcp(upstream.b, 8081)] == "ok"
    assert seen[tcp(upstream.b)] == "ECONNREFUSED"  # *.wild.test is allowed on 8081 only
    assert seen["dns:other.test"] == "nxdomain"
    assert seen["dns:rebind.test"] != upstream.metadata
    assert seen[tcp(upstream.metadata)] == "ECONNREFUSED"


@pytest.mark.parametrize("pool", POOLS)
def test_allow_by_domain_is_closed_before_the_lookup(
    net_sp: Sandpool, upstream: Upstream, pool: str, net_no_leaks: Sandbox
) -> None:
    seen, _ = probe(net_sp, pool, [tcp(upstream.a)], allow=["api.test"])
    assert seen[tcp(upstream.a)] == "ECONNREFUSED"


LOOP = r"""
import socket, sys, time
deadline = time.time() + 60
refused = 0
while time.time() < deadline:
    try:
        socket.create_connection((sys.argv[1], 8080), timeout=2).close()
        print("reached after", refused, "refusals", flush=True)
        sys.exit(0)
    except OSError:
        refused += 1
        if refused == 3:
            print("refused", flush=True)
        time.sleep(0.2)
sys.exit(3)
"""


@pytest.mark.parametrize("pool", POOLS)
def test_policy_change_on_a_running_container(net_sp: Sandpool, upstream: Upstream, pool: str,
                                              net_no_leaks: Sandbox) -> None:  # fmt: skip
    """A container that may reach nothing keeps trying; once its policy allows the server
    (changed through the API while it runs, after it printed that it was refused), it
    reaches it."""
    from sandpool.worker.container import Stdio
    from sandpool.worker.request import RunRequest

    containers: list[ContainerRun] = []
    results: list[RunResult] = []
    request = RunRequest(("python3", "-c", LOOP, upstream.a), timeout=90, network="allow")
    out, into = os.pipe()  # the container's stdout, read while it runs
    try:
        worker = threading.Thread(target=lambda: results.append(net_sp.run_request(
            pool, request, Stdio(stdout=into), on_container=containers.append)))  # fmt: skip
        worker.start()
        assert _read_until(out, b"refused\n", 60) == b"refused\n"  # 3 refusals, then the change
        net_sp.set_network(containers[0].id, "allow", [upstream.a])
        worker.join(90)
    finally:
        os.close(into)
    assert results and results[0].exit_code == 0, results
    assert _read_until(out, b"", 30).startswith(b"reached after"), "not reached after the change"
    os.close(out)


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    """What ``fd`` gives until it has given ``wanted`` (or, for b"", its end), or ``timeout``."""
    got, deadline = b"", time.monotonic() + timeout
    while not (wanted and wanted in got):
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        got += chunk
    return got


@pytest.mark.parametrize("pool", POOLS)
def test_sigkilled_owner_then_gc_leaves_nothing(sandbox: Sandbox, net_sp: Sandpool,
                                                upstream: Upstream, pool: str) -> None:  # fmt: skip
    config = network_config(sandbox, upstream)
    cli = str(Path(sys.executable).parent / "sandpool")
    run = subprocess.Popen([cli, "run", "-c", str(config),
                            "--pool", pool, "--network", "open", "--", "sleep", "60"])  # fmt: skip
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not _netns_of(sandbox.state_dir):
            time.sleep(0.1)
        assert _netns_of(sandbox.state_dir), "the run never set up its network"
        time.sleep(1.0)  # its DNS filter and runtime are up
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    assert network_leftovers(sandbox.state_dir) != []  # the crash left it behind ...
    net_sp.gc()
    assert network_leftovers(sandbox.state_dir) == []  # ... and gc removed it all
    assert sandbox.leftovers() == []


def _netns_of(state_dir: Path) -> list[str]:
    return [x for x in network_leftovers(state_dir) if x.startswith("netns")]


@pytest.fixture(scope="module")
def host_service(upstream: Upstream) -> Iterator[int]:
    """A TCP service of the host itself, on its end of the test veth (port 8090)."""
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((upstream.host, 8090))
    server.listen(16)
    yield 8090
    server.close()
