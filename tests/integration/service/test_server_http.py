"""``sandpool server`` as a user meets it, over real HTTP to a real process: the set-up
commands, the SDK, runs in real runc and gVisor containers, quotas under concurrent load,
two tenants kept apart, bad input, the admin key's life, metrics and logs, SIGTERM mid-run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any

import httpx
import pytest

from sandpool.client import (
    AsyncClient,
    Client,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
)
from tests.integration.conftest import Sandbox
from tests.integration.service.conftest import SANDPOOL, ServerProcess

pytestmark = [pytest.mark.root, pytest.mark.runc]


def cli(server: ServerProcess, *args: str,
        key: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "SANDPOOL_URL": server.url,
           "SANDPOOL_API_KEY": key or server.admin_key or ""}  # fmt: skip
    return subprocess.run([SANDPOOL, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip


def tenant_key(server: ServerProcess, name: str, **quota: Any) -> str:
    with server.client(server.admin_key) as admin:
        admin.create_tenant(name, **quota)
        return admin.create_key(name).key


def test_the_set_up_commands_of_the_quick_start(server: ServerProcess) -> None:
    assert server.admin_key and server.admin_key.startswith("sp_")
    made = cli(server, "tenants", "create", "acme")
    assert made.returncode == 0, made.stderr
    created = cli(server, "keys", "create", "--tenant", "acme", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    assert key not in cli(server, "keys", "ls").stdout
    assert "acme" in cli(server, "tenants", "ls").stdout
    with Client(server.url, key) as client:
        assert client.me().tenant == "acme"
    as_tenant = cli(server, "tenants", "ls", key=key)
    assert as_tenant.returncode == 1
    assert as_tenant.stderr.startswith("PermissionDenied: this needs the admin key")
    key_id = json.loads(created.stdout)["id"]
    assert cli(server, "keys", "revoke", key_id).returncode == 0
    with Client(server.url, key) as client, pytest.raises(Unauthenticated):
        client.me()
    assert cli(server, "tenants", "rm", "acme").returncode == 0
    missing = cli(server, "tenants", "rm", "acme")
    assert (missing.returncode, missing.stderr.split(":")[0]) == (1, "NotFound")


@pytest.mark.runsc
def test_runs_through_the_sdk_on_runc_and_gvisor(server: ServerProcess) -> None:
    key = tenant_key(server, "runner")
    with Client(server.url, key) as client:
        result = client.run(["sh", "-c", "cat; echo err >&2; exit 3"], pool="performance",
                            stdin="in\n", env={"A": "1"})  # fmt: skip
        assert (result.exit_code, result.stdout, result.stderr) == (3, b"in\n", b"err\n")
        assert result.container_runtime == "runc"
        gvisor = client.run(["sh", "-c", "printf '\\377'; echo $A"], env={"A": "b"})
        assert (gvisor.exit_code, gvisor.stdout) == (0, b"\xffb\n")
        assert gvisor.container_runtime == "gvisor"
        slow = client.run(["sleep", "10"], pool="performance", timeout=0.5)
        assert (slow.exit_code, slow.timed_out) == (124, True)
        capped = client.run(["sh", "-c", "head -c 5000 /dev/zero"], pool="performance",
                            max_output="1Ki")  # fmt: skip
        assert (len(capped.stdout), capped.stdout_truncated) == (1024, True)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'sandpool_runs_total{exit_class="nonzero",pool="performance"} 1.0' in metrics
    assert 'sandpool_runs_total{exit_class="timeout",pool="performance"} 1.0' in metrics
    assert 'sandpool_runs_total{exit_class="ok",pool="default"} 1.0' in metrics


def test_concurrent_runs_never_overshoot_the_quota(server: ServerProcess) -> None:
    key = tenant_key(server, "busy", concurrent=2)

    async def burst() -> list[Any]:
        async with AsyncClient(server.url, key) as client:
            runs = [client.run(["sleep", "2"], pool="performance") for _ in range(8)]
            return await asyncio.gather(*runs, return_exceptions=True)

    outcomes = asyncio.run(burst())
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(done), len(refused)) == (2, 6), outcomes
    assert all(r.retry_after and r.retry_after >= 1 for r in refused)
    assert all(d.exit_code == 0 for d in done)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'sandpool_quota_refusals_total{reason="concurrent"} 6.0' in metrics


def test_the_create_rate_answers_429_with_retry_after(server: ServerProcess) -> None:
    key = tenant_key(server, "hasty", creates_per_second=0.2)
    headers = {"Authorization": f"Bearer {key}"}
    first = httpx.post(f"{server.url}/v1/runs", json={"pool": "performance", "command": ["true"]},
                       headers=headers, timeout=60)  # fmt: skip
    assert first.status_code == 200
    second = httpx.post(f"{server.url}/v1/runs", json={"pool": "performance"}, headers=headers)
    assert second.status_code == 429 and second.json()["code"] == "quota_exceeded"
    assert 1 <= int(second.headers["Retry-After"]) <= 5


def test_two_tenants_are_kept_apart_on_every_endpoint(server: ServerProcess) -> None:
    a_key, b_key = tenant_key(server, "alpha", concurrent=1), tenant_key(server, "beta")
    with Client(server.url, a_key) as a, Client(server.url, b_key) as b:
        assert (a.me().tenant, b.me().tenant) == ("alpha", "beta")
        for client in (a, b):  # the admin operations, for either tenant
            for call in (client.list_tenants, lambda c=client: c.get_tenant("alpha"),
                         lambda c=client: c.delete_tenant("beta"),
                         lambda c=client: c.create_tenant("x"), client.list_keys,
                         lambda c=client: c.create_key("alpha"),
                         lambda c=client: c.revoke_key(c.me().key_id)):  # fmt: skip
                with pytest.raises(PermissionDenied):
                    call()
        assert [p.name for p in a.list_pools()] == [p.name for p in b.list_pools()]

        async def alpha_holds_its_only_slot() -> tuple[Any, Any]:
            async with AsyncClient(server.url, a_key) as slow:
                held = asyncio.create_task(slow.run(["sleep", "2"], pool="performance"))
                await asyncio.sleep(1.0)
                usage = (a.me().usage, b.me().usage)
                with pytest.raises(QuotaExceeded):
                    a.run(["true"], pool="performance")
                beta = b.run(["true"], pool="performance")  # beta is not counted as alpha
                await held
                return usage, beta

        (a_usage, b_usage), beta_run = asyncio.run(alpha_holds_its_only_slot())
        assert a_usage is not None and a_usage["concurrent"] == 1
        assert b_usage is not None and b_usage["concurrent"] == 0
        assert beta_run.exit_code == 0


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", "/v1/runs", b'{"pool":', 400, "invalid_request"),
    ("POST", "/v1/runs", b'{"pool": 7}', 400, "invalid_request"),
    ("POST", "/v1/runs", b'{"limits": {"memory": []}}', 400, "invalid_request"),
    ("POST", "/v1/runs", b'{"pool": "nope"}', 400, "invalid_request"),
    ("POST", "/v1/runs", b'{"image": "/nowhere/at/all"}', 400, "invalid_request"),
    ("POST", "/v1/runs", b"x" * (2 << 20), 413, "payload_too_large"),
    ("GET", "/v1/pools/nope", b"", 404, "not_found"),
    ("GET", "/v1/nothing", b"", 404, "not_found"),
])  # fmt: skip
def test_bad_input_gets_its_status_and_never_a_traceback(
    server: ServerProcess, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    key = tenant_key(server, f"bad{abs(hash((path, body))) % 10**8}")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    answer = httpx.request(method, server.url + path, content=body, headers=headers, timeout=60)
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert set(answer.json()) == {"code", "message", "hint"}
    assert "Traceback" not in answer.text and "Traceback" not in server.stderr()


def test_huge_headers_and_unknown_or_revoked_keys(server: ServerProcess) -> None:
    big = httpx.get(f"{server.url}/v1/pools", headers={"X-Big": "a" * 40000})
    assert (big.status_code, big.json()["code"]) == (431, "headers_too_large")
    for key in ("nope", "sp_0000000000000000_" + "A" * 43):
        with Client(server.url, key) as client, pytest.raises(Unauthenticated):
            client.list_pools()
    with Client(server.url, server.admin_key) as admin, pytest.raises(NotFound):
        admin.revoke_key("0000000000000000")


def test_a_keep_alive_client_gets_answers_without_the_delayed_ack_wait(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        times = []
        for _ in range(21):
            start = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            times.append(time.perf_counter() - start)
    # Without TCP_NODELAY each answer (head and body: two writes) waited ~40 ms here.
    assert sorted(times)[10] < 0.025, times


def test_each_request_is_one_json_log_line(server: ServerProcess) -> None:
    key = tenant_key(server, "logged")
    with Client(server.url, key) as client:
        client.list_pools()
    deadline = time.monotonic() + 10  # the line is written once the answer has gone out
    while True:
        lines = [json.loads(ln) for ln in server.stderr().splitlines() if ln.startswith("{")]
        mine = [ln for ln in lines if ln["tenant"] == "logged" and ln["route"] == "/v1/pools"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine and mine[-1]["status"] == 200 and mine[-1]["durationMs"] > 0
    assert mine[-1]["requestId"]


def test_the_admin_key_is_printed_once_and_kept(service_box: Sandbox) -> None:
    first = ServerProcess(service_box)  # the module's server printed it; this one does not
    try:
        assert first.admin_key is None
        with Client(first.url, "sp_x") as anon, pytest.raises(Unauthenticated):
            anon.list_tenants()
    finally:
        first.stop()
    given = ServerProcess(service_box, env={"SANDPOOL_ADMIN_KEY": "an-operators-own-key"})
    try:
        assert given.admin_key is None
        with Client(given.url, "an-operators-own-key") as admin:
            assert "runner" in [t.name for t in admin.list_tenants()]  # kept across restarts
    finally:
        given.stop()


def test_sigterm_mid_run_stops_the_run_and_leaves_nothing(service_box: Sandbox) -> None:
    process = ServerProcess(service_box, env={"SANDPOOL_ADMIN_KEY": "k-sigterm"})
    try:
        with Client(process.url, "k-sigterm") as admin:
            admin.create_tenant("sigterm")
            key = admin.create_key("sigterm").key

        async def run_and_stop() -> Any:
            async with AsyncClient(process.url, key) as client:
                run = asyncio.create_task(client.run(["sleep", "60"], pool="performance"))
                await asyncio.sleep(1.5)
                started = time.monotonic()
                process.proc.terminate()
                outcome = await asyncio.gather(run, return_exceptions=True)
                return outcome[0], time.monotonic() - started

        outcome, waited = asyncio.run(run_and_stop())
        status = process.proc.wait(30)
        assert status in (0, -15), process.stderr()
        assert waited < 20  # shutdownTimeout is 2 s: the run was stopped, not waited for
        assert isinstance(outcome, Exception), outcome  # no answer: the server went away
        assert not service_box.leftovers()
        assert "stopped 1 runs still going on" in process.stderr()
    finally:
        process.stop()
