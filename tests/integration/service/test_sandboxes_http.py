"""Sandboxes, execs and files over real HTTP against a real ``sandpool server`` process, with
real runc (and one gVisor) containers: the SDK's quick start, every endpoint, two tenants kept
apart on every endpoint, quotas under concurrent creates, TTL/idle ends recorded, output
streams resumed without loss, streaming uploads and downloads with the server's memory
measured, bad input, and a server killed mid-exec whose successor re-adopts the sandbox."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandpool.client import (
    AsyncClient,
    AsyncSandbox,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    Sandbox,
)
from sandpool.client.transport import Call
from tests.integration.conftest import Sandbox as Box
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.service.conftest import ServerProcess

pytestmark = [pytest.mark.root, pytest.mark.runc]
RUNC = "performance"


@pytest.fixture(scope="module")
def service_box() -> Iterator[Box]:
    """This module's installation: uploads capped at 200 MiB (for the 413 cases)."""
    with reachable_tmp_dir() as base:
        box = Box(base)
        box.cgroup_parent = f"sandpool-svcsb-{os.getpid()}"
        box.write_config("gateway:\n  shutdownTimeout: 2\n  maxUploadSize: 200Mi\n"
                         "  tenantQuota: {concurrent: 4, createsPerSecond: 100}\n")  # fmt: skip
        yield box
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not left, f"the service leaked: {left}"


def tenant_key(server: ServerProcess, name: str, **quota: Any) -> str:
    with server.client(server.admin_key) as admin:
        admin.create_tenant(name, **quota)
        return admin.create_key(name).key


def http(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=120)  # fmt: skip


def usage(server: ServerProcess, key: str) -> int:
    with Client(server.url, key) as client:
        me = client.me()
        assert me.usage is not None
        return int(me.usage["concurrent"])


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_the_sdk_quick_start(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tenant_key(server, "quick")
    monkeypatch.setenv("SANDPOOL_URL", server.url)
    monkeypatch.setenv("SANDPOOL_API_KEY", key)
    with Sandbox.create(pool=RUNC, timeout=300, labels={"job": "7"}, env={"A": "1"}) as sb:
        r = sb.exec(["sh", "-c", "echo $A; echo oops >&2; exit 3"])
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"1\n", b"oops\n")
        assert not r.oom_killed and not r.timed_out
        data = bytes(range(256)) * 1000
        # as in the contract: no mkdir first, the missing parents are made
        assert sb.files.write("/data/in.bin", data) == len(data)
        assert sb.files.write("/deep/er/f", b"x") == 1 and sb.files.read("/deep/er/f") == b"x"
        assert sb.files.read("/data/in.bin") == data
        assert [f.name for f in sb.files.list("/data")] == ["in.bin"]
        again = Sandbox.connect(sb.id)
        assert again.info.state == "running" and again.info.labels == {"job": "7"}
        again.close()
        assert [s.id for s in Sandbox.list(labels={"job": "7"})] == [sb.id]
        assert Sandbox.list(labels={"job": "8"}) == []
        assert usage(server, key) == 1
    assert sb.info.state == "terminated" and sb.info.reason == "killed"
    assert usage(server, key) == 0
    assert Sandbox.list(state="running") == []


def test_sandbox_endpoints_and_their_states(server: ServerProcess) -> None:
    key = tenant_key(server, "states")
    with http(server, key) as c:
        made = c.post("/v1/sandboxes", json={"pool": RUNC, "labels": {"a": "b"}, "ttl": 600})
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        assert made.json()["containerRuntime"] == "runc"
        assert c.post(f"/v1/sandboxes/{sid}/resume").status_code == 409
        paused = c.post(f"/v1/sandboxes/{sid}/pause")
        assert paused.json()["state"] == "paused"
        assert c.post(f"/v1/sandboxes/{sid}/pause").status_code == 409
        refused = c.post(f"/v1/sandboxes/{sid}/execs", json={"command": ["true"]})
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
        assert c.get("/v1/sandboxes", params={"state": "paused"}).json()[0]["id"] == sid
        assert c.post(f"/v1/sandboxes/{sid}/resume").json()["state"] == "running"
        assert c.get("/v1/sandboxes", params={"state": "paused"}).json() == []
        assert [s["id"] for s in c.get("/v1/sandboxes", params={"pool": RUNC}).json()] == [sid]
        assert c.get("/v1/sandboxes", params={"pool": "default"}).json() == []
        assert c.get("/v1/sandboxes", params={"label": "a=b"}).json()[0]["id"] == sid
        assert c.get("/v1/sandboxes", params={"label": "a=c"}).json() == []
        ttl = c.put(f"/v1/sandboxes/{sid}/ttl", json={"ttl": 1.5})
        assert ttl.status_code == 200 and ttl.json()["expiresAt"]
        ended = wait_for(lambda: c.get(f"/v1/sandboxes/{sid}").json()["state"] == "terminated")
        assert ended, c.get(f"/v1/sandboxes/{sid}").json()
        assert c.get(f"/v1/sandboxes/{sid}").json()["reason"] == "ttl"
        assert c.post(f"/v1/sandboxes/{sid}/pause").status_code == 409
        gone = c.delete(f"/v1/sandboxes/{sid}")  # terminating an ended one: as it is
        assert (gone.status_code, gone.json()["reason"]) == (200, "ttl")
        assert c.get("/v1/sandboxes", params={"state": "terminated"}).json()[0]["id"] == sid
    assert usage(server, key) == 0


def test_idle_timeout_ends_a_sandbox_and_frees_its_quota(server: ServerProcess) -> None:
    key = tenant_key(server, "idle")
    with http(server, key) as c:
        sid = c.post("/v1/sandboxes", json={"pool": RUNC, "idleTimeout": 1}).json()["id"]
        assert usage(server, key) == 1
        assert wait_for(lambda: c.get(f"/v1/sandboxes/{sid}").json()["state"] == "terminated")
        assert c.get(f"/v1/sandboxes/{sid}").json()["reason"] == "idle"
        assert wait_for(lambda: usage(server, key) == 0, 5)


def test_bad_sandbox_requests(server: ServerProcess) -> None:
    key = tenant_key(server, "badreq")
    with http(server, key) as c:
        cases = [
            ({"pool": RUNC, "limits": {"cpu": "lots"}}, "limits.cpu"),
            ({"pool": RUNC, "ttl": -1}, "ttl"),
            ({"pool": RUNC, "labels": {"a": 1}}, "labels.a"),
            ({"pool": RUNC, "surprise": 1}, "surprise"),
            ({"pool": "nope"}, "pool"),
        ]
        for body, field in cases:
            answer = c.post("/v1/sandboxes", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["message"].startswith(field), answer.json()
        raw = c.post(
            "/v1/sandboxes", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert (raw.status_code, raw.json()["code"]) == (400, "invalid_request")
        assert c.get("/v1/sandboxes", params={"state": "sleepy"}).status_code == 400
        assert c.get("/v1/sandboxes", params={"label": "novalue"}).status_code == 400
        for method, path in [("GET", "/v1/sandboxes/sb-nope"), ("DELETE", "/v1/sandboxes/x"),
                             ("GET", "/v1/sandboxes/x/execs/y/events")]:  # fmt: skip
            answer = c.request(method, path)
            assert answer.status_code == 404 and "Traceback" not in answer.text
    assert usage(server, key) == 0


def _matrix(sid: str, eid: str) -> list[tuple[str, str, dict[str, Any]]]:
    base, ex, files = f"/v1/sandboxes/{sid}", f"/v1/sandboxes/{sid}/execs/{eid}", {"path": "/"}
    return [
        ("GET", base, {}), ("DELETE", base, {}), ("POST", f"{base}/pause", {}),
        ("POST", f"{base}/resume", {}), ("PUT", f"{base}/ttl", {"json": {"ttl": 1}}),
        ("POST", f"{base}/execs", {"json": {"command": ["true"]}}), ("GET", ex, {}),
        ("POST", f"{base}/execs/stream", {"json": {"command": ["true"]}}),
        ("GET", f"{ex}/events", {}), ("POST", f"{ex}/stdin", {"content": b"x"}),
        ("POST", f"{ex}/stdin/close", {}), ("POST", f"{ex}/kill", {}),
        ("GET", f"{base}/files", {"params": files}),
        ("GET", f"{base}/files/stat", {"params": files}),
        ("GET", f"{base}/files/content", {"params": {"path": "/etc/hostname"}}),
        ("PUT", f"{base}/files/content", {"params": {"path": "/x"}, "content": b"x"}),
        ("DELETE", f"{base}/files", {"params": {"path": "/tmp"}}),
        ("POST", f"{base}/files/mkdir", {"json": {"path": "/y"}}),
        ("POST", f"{base}/files/rename", {"json": {"source": "/tmp", "destination": "/z"}}),
    ]  # fmt: skip


def test_two_tenants_never_see_each_others_sandboxes(server: ServerProcess) -> None:
    owner, other = tenant_key(server, "owner"), tenant_key(server, "other")
    with http(server, owner) as a, http(server, other) as b:
        sid = a.post("/v1/sandboxes", json={"pool": RUNC}).json()["id"]
        eid = a.post(f"/v1/sandboxes/{sid}/execs",
                     json={"command": ["sleep", "30"], "stdin": True}).json()["id"]  # fmt: skip
        for method, path, extra in _matrix(sid, eid):
            answer = b.request(method, path, **extra)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["code"] == "not_found"
        unknown = b.get("/v1/sandboxes/sb-does-not-exist")
        assert unknown.json()["message"] == b.get(f"/v1/sandboxes/{sid}").json()["message"].replace(
            sid, "sb-does-not-exist")  # fmt: skip
        assert b.get("/v1/sandboxes").json() == []
        mine = a.get(f"/v1/sandboxes/{sid}").json()
        assert mine["state"] == "running"  # none of the other's calls touched it
        assert a.get(f"/v1/sandboxes/{sid}/execs/{eid}").json()["done"] is False
        assert a.delete(f"/v1/sandboxes/{sid}").json()["state"] == "terminated"
    assert usage(server, owner) == 0


def test_concurrent_creates_never_overshoot_the_quota(server: ServerProcess) -> None:
    key = tenant_key(server, "crowd", concurrent=2)

    def create(_: int) -> httpx.Response:
        with http(server, key) as c:
            return c.post("/v1/sandboxes", json={"pool": RUNC})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(create, range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 201, 429, 429, 429, 429], [a.text for a in answers]
    assert all(a.headers.get("retry-after") for a in answers if a.status_code == 429)
    assert usage(server, key) == 2
    with http(server, key) as c:
        for answer in answers:
            if answer.status_code == 201:
                c.delete(f"/v1/sandboxes/{answer.json()['id']}")
        assert usage(server, key) == 0
        again = c.post("/v1/sandboxes", json={"pool": RUNC})
        assert again.status_code == 201
        c.delete(f"/v1/sandboxes/{again.json()['id']}")
    with Client(server.url, key) as client, pytest.raises(InvalidRequest, match=r"limits\.memory"):
        client.send(_too_much_memory())  # can never fit: 400, not 429


def _too_much_memory() -> Any:
    from sandpool.client import sandbox_ops as ops

    return ops.create(pool=RUNC, image=None, ttl=None, idle_timeout=None, cpu=None,
                      memory="1Ti", pids=None, disk=None, env=None, workdir=None,
                      labels=None)  # fmt: skip


def _events(c: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    with c.stream("GET", path, params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            if line:
                yield json.loads(line)


COUNT = "for i in $(seq 1 40); do echo line-$i; echo err-$i >&2; sleep 0.05; done"


def test_exec_output_resumes_from_offsets_without_loss(server: ServerProcess) -> None:
    key = tenant_key(server, "resume")
    with http(server, key) as c:
        sid = c.post("/v1/sandboxes", json={"pool": RUNC}).json()["id"]
        command = {"command": ["sh", "-c", COUNT]}
        eid = c.post(f"/v1/sandboxes/{sid}/execs", json=command).json()["id"]
        got = {"stdout": b"", "stderr": b""}
        path = f"/v1/sandboxes/{sid}/execs/{eid}/events"
        for event in _events(c, path):  # read a few events, then drop the connection
            assert event["offset"] == len(got[event["type"]])
            got[event["type"]] += base64.b64decode(event["data"])
            if len(got["stdout"]) > 30:
                break
        exits = []
        for event in _events(c, path, stdout_offset=len(got["stdout"]),
                             stderr_offset=len(got["stderr"])):  # fmt: skip
            if event["type"] == "exit":
                exits.append(event)
            elif event["type"] != "keepalive":
                assert event["offset"] == len(got[event["type"]])
                got[event["type"]] += base64.b64decode(event["data"])
        assert got["stdout"] == b"".join(b"line-%d\n" % i for i in range(1, 41))
        assert got["stderr"] == b"".join(b"err-%d\n" % i for i in range(1, 41))
        assert len(exits) == 1 and exits[0]["exitCode"] == 0 and exits[0]["finishedAt"]
        c.delete(f"/v1/sandboxes/{sid}")


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.iter_lines() if line]


def test_an_exec_starts_and_streams_in_one_request(server: ServerProcess) -> None:
    """``POST …/execs/stream``: the start line names the exec, the output follows with its
    offsets, the exit comes last; the id resumes through ``…/events``; what fails before the
    start is a JSON error with its status, never a stream."""
    key = tenant_key(server, "onestream")
    with http(server, key) as c:
        sid = c.post("/v1/sandboxes", json={"pool": RUNC}).json()["id"]
        script = "for i in 1 2 3; do echo out-$i; echo err-$i >&2; done; exit 7"
        with c.stream("POST", f"/v1/sandboxes/{sid}/execs/stream",
                      json={"command": ["sh", "-c", script]}) as response:  # fmt: skip
            events = _lines(response)
        start, body, end = events[0], events[1:-1], events[-1]
        assert start["type"] == "start" and start["exec"]["sandboxId"] == sid
        assert start["exec"]["done"] is False and start["exec"]["exitCode"] is None
        assert end["type"] == "exit" and end["exitCode"] == 7
        got = {"stdout": b"", "stderr": b""}
        for event in body:
            assert event["offset"] == len(got[event["type"]])
            got[event["type"]] += base64.b64decode(event["data"])
        assert got == {"stdout": b"out-1\nout-2\nout-3\n", "stderr": b"err-1\nerr-2\nerr-3\n"}
        eid = start["exec"]["id"]
        assert c.get(f"/v1/sandboxes/{sid}/execs/{eid}").json()["exitCode"] == 7
        events = _events(c, f"/v1/sandboxes/{sid}/execs/{eid}/events", stdout_offset=6,
                         stderr_offset=18)  # fmt: skip
        again = [e for e in events if e["type"] != "exit"]
        assert {e["type"] for e in again} == {"stdout"} and again[0]["offset"] == 6, again
        assert b"".join(base64.b64decode(e["data"]) for e in again) == b"out-2\nout-3\n"
        bad = c.post(f"/v1/sandboxes/{sid}/execs/stream", json={"command": "ls"})
        assert bad.status_code == 400 and "command" in bad.json()["message"], bad.text
        unknown = c.post("/v1/sandboxes/sb-nope/execs/stream", json={"command": ["true"]})
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        assert c.post(f"/v1/sandboxes/{sid}/pause").status_code == 200
        paused = c.post(f"/v1/sandboxes/{sid}/execs/stream", json={"command": ["true"]})
        assert paused.status_code == 409 and paused.json()["code"] == "conflict", paused.text
        c.delete(f"/v1/sandboxes/{sid}")
        ended = c.post(f"/v1/sandboxes/{sid}/execs/stream", json={"command": ["true"]})
        assert ended.status_code == 409 and "traceback" not in ended.text.lower(), ended.text
    assert usage(server, key) == 0


def test_exec_keepalives_exit_after_the_end_and_stdin(server: ServerProcess) -> None:
    key = tenant_key(server, "streams")
    with Sandbox.create(pool=RUNC, url=server.url, api_key=key) as sb:
        with http(server, key) as c:
            eid = sb.exec_stream(["sh", "-c", "sleep 1.5; echo done"]).id
            started = time.monotonic()
            kinds = [e["type"] for e in _events(c, f"/v1/sandboxes/{sb.id}/execs/{eid}/events",
                                                keepalive=0.2)]  # fmt: skip
            assert time.monotonic() - started >= 1.2
            assert kinds.count("keepalive") >= 3 and kinds[-2:] == ["stdout", "exit"]
        stream = sb.exec_stream(["sh", "-c", "cat; echo end >&2"], stdin=True)
        stream.write_stdin(b"hello ")
        stream.write_stdin("world")
        stream.close_stdin()
        result = stream.wait()
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"hello world", b"end\n")
        chunks: list[bytes] = []
        r = sb.exec(["sh", "-c", "echo a; echo b"], on_stdout=chunks.append)
        assert b"".join(chunks) == r.stdout == b"a\nb\n"
        assert sb.exec(["cat"], stdin=b"piped").stdout == b"piped"
        slow = sb.exec_stream(["sleep", "60"])
        slow.kill()
        assert slow.wait().exit_code == 137 and slow.wait().killed
        assert sb.exec(["sleep", "5"], timeout=0.5).timed_out
        with pytest.raises(Conflict):
            sb.exec_stream(["true"]).write_stdin(b"x")  # started without stdin
        with http(server, key) as c:
            assert c.get(f"/v1/sandboxes/{sb.id}/execs/{eid}", params={"wait": 5}).json()["done"]
            assert c.get(f"/v1/sandboxes/{sb.id}/execs/ex-nope").status_code == 404


def test_streams_do_not_block_other_requests(server: ServerProcess) -> None:
    key = tenant_key(server, "busy")
    with Sandbox.create(pool=RUNC, url=server.url, api_key=key) as sb:
        eid = sb.exec_stream(["sleep", "8"]).id
        path = f"{server.url}/v1/sandboxes/{sb.id}/execs/{eid}/events"
        headers = {"Authorization": f"Bearer {key}"}
        clients = [httpx.Client(timeout=60) for _ in range(60)]
        streams = [c.stream("GET", path, headers=headers) for c in clients]
        try:
            for stream in streams:
                assert stream.__enter__().status_code == 200
            started = time.monotonic()
            with http(server, key) as c:
                assert c.get(f"/v1/sandboxes/{sb.id}").status_code == 200
                assert c.get("/healthz").status_code == 200
                assert sb.exec(["echo", "hi"]).stdout == b"hi\n"
            assert time.monotonic() - started < 5
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
            for c in clients:
                c.close()


def test_files_endpoints_and_bad_paths(server: ServerProcess) -> None:
    key = tenant_key(server, "files")
    marker = f"/tmp/sandpool-escape-{os.getpid()}"
    with Sandbox.create(pool=RUNC, url=server.url, api_key=key) as sb:
        files = sb.files
        files.mkdir("/w/a/b", parents=True)
        with pytest.raises(Conflict):
            files.mkdir("/w/a")
        files.write("/w/a/b/f.txt", "text")
        assert files.stat("/w/a/b/f.txt").size == 4
        files.rename("/w/a/b/f.txt", "/w/g.txt")
        assert sorted(f.name for f in files.list("/w")) == ["a", "g.txt"]
        with pytest.raises(NotFound):
            files.read("/w/a/b/f.txt")
        with pytest.raises(Conflict):
            files.remove("/w/a")
        files.remove("/w/a", recursive=True)
        assert [f.name for f in files.list("/w")] == ["g.txt"]
        with pytest.raises(InvalidRequest):
            files.list("/w/g.txt")  # not a directory
        # .. and symlinks are resolved inside the sandbox: the host is never reached
        files.write(f"../../../..{marker}", b"inside")
        assert not os.path.exists(marker)
        assert files.read(marker) == b"inside"
        sb.exec(["ln", "-s", "/", "/w/up"])
        files.write(f"/w/up/../up{marker}", b"again")
        assert not os.path.exists(marker)
        assert files.stat("/w/up").type == "symlink"
        with http(server, key) as c:
            base = f"/v1/sandboxes/{sb.id}/files"
            assert c.get(base).status_code == 400  # no path
            assert c.get(base, params={"path": ""}).status_code == 400
            bad_mode = c.put(f"{base}/content", params={"path": "/m", "mode": "999"}, content=b"x")
            assert bad_mode.status_code == 400


def declared_only(server: ServerProcess, key: str, target: str, length: int) -> bytes:
    """PUT headers that announce ``length`` bytes, no body; the raw answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(65536)):  # headers, then the body
            answer += chunk
        return answer


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _round_trip(server: ServerProcess, key: str, size: int) -> tuple[float, float, int]:
    """Upload and download ``size`` bytes (streamed both ways); the seconds each took and
    the server's peak RSS growth (KiB) while they ran."""
    pid, peak, done = server.proc.pid, [0], threading.Event()
    base = _rss_kib(pid)

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_kib(pid) - base)

    block = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    threading.Thread(target=sample, daemon=True).start()
    try:
        with Sandbox.create(
            pool=RUNC, url=server.url, api_key=key, disk=f"{(size >> 20) * 2}Mi"
        ) as sb:
            started = time.monotonic()
            assert sb.files.write("/big.bin", body()) == size
            up = time.monotonic() - started
            started, total = time.monotonic(), 0
            for chunk in sb.files.read_stream("/big.bin"):
                total += len(chunk)
            assert total == size
            down = time.monotonic() - started
            assert sb.exec(["sh", "-c", "wc -c < /big.bin"]).stdout.strip() == str(size).encode()
    finally:
        done.set()
    return up, down, peak[0]


def test_a_128_mib_upload_and_download_stream(server: ServerProcess) -> None:
    key = tenant_key(server, "bulk")
    up, down, peak = _round_trip(server, key, 128 << 20)
    print(f"128 MiB: upload {up:.2f} s, download {down:.2f} s, server RSS +{peak >> 10} MiB")
    assert peak < 64 << 10, f"the server grew by {peak >> 10} MiB"


@pytest.mark.skipif(not os.environ.get("SANDPOOL_BIG"), reason="moves 1 GiB: SANDPOOL_BIG=1")
def test_a_1_gib_upload_and_download_stream() -> None:
    with reachable_tmp_dir() as base:
        box = Box(base)
        box.cgroup_parent = f"sandpool-svcbig-{os.getpid()}"
        box.write_config("gateway:\n  shutdownTimeout: 2\n")
        big = ServerProcess(box)
        try:
            key = tenant_key(big, "huge")
            up, down, peak = _round_trip(big, key, 1 << 30)
        finally:
            big.stop()
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not left, f"the service leaked: {left}"
    print(f"1 GiB: upload {up:.2f} s, download {down:.2f} s, server RSS +{peak >> 10} MiB")
    assert peak < 64 << 10, f"the server grew by {peak >> 10} MiB"


def test_uploads_over_the_limit_are_refused_and_leave_nothing(server: ServerProcess) -> None:
    key = tenant_key(server, "limit")
    with Sandbox.create(pool=RUNC, url=server.url, api_key=key) as sb, http(server, key) as c:
        url = f"/v1/sandboxes/{sb.id}/files/content"
        declared = declared_only(server, key, f"{url}?path=/x", 201 << 20)
        assert declared.startswith(b"HTTP/1.1 413") and b"payload_too_large" in declared

        def chunks() -> Iterator[bytes]:
            block = b"y" * (1 << 20)
            for _ in range(201):
                yield block

        streamed = c.put(url, params={"path": "/y"}, content=chunks())
        assert streamed.status_code == 413, streamed.text
        assert "maxUploadSize" in streamed.json()["hint"]
        with pytest.raises(NotFound):
            sb.files.stat("/y")  # the part written was removed


@pytest.mark.runsc
def test_a_gvisor_sandbox_over_http(server: ServerProcess) -> None:
    key = tenant_key(server, "gvisor")
    with Sandbox.create(pool="default", url=server.url, api_key=key) as sb:
        assert sb.info.container_runtime == "gvisor"
        r = sb.exec(["sh", "-c", "cat /proc/version >/dev/null; echo hi; exit 4"])
        assert (r.exit_code, r.stdout) == (4, b"hi\n")
        sb.files.write("/tmp/f", b"\x00\xff" * 50000)
        assert sb.files.read("/tmp/f") == b"\x00\xff" * 50000
        stream = sb.exec_stream(["sleep", "30"])
        stream.kill()
        assert stream.wait().exit_code == 137
    assert usage(server, key) == 0


def test_a_killed_server_s_successor_re_adopts_its_sandboxes(service_box: Box) -> None:
    database = f"sqlite:///{service_box.base}/restart.db"
    first = ServerProcess(service_box, database=database)
    admin = first.admin_key
    assert admin
    key = tenant_key(first, "survivor")
    with http(first, key) as c:
        sid = c.post("/v1/sandboxes", json={"pool": RUNC, "labels": {"k": "v"}}).json()["id"]
        command = {"command": ["sh", "-c", "echo x > /mark; sleep 60"]}
        eid = c.post(f"/v1/sandboxes/{sid}/execs", json=command).json()["id"]
        time.sleep(0.5)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = ServerProcess(service_box, database=database)
    try:
        with http(second, key) as c:
            info = c.get(f"/v1/sandboxes/{sid}").json()
            assert (info["state"], info["labels"]) == ("running", {"k": "v"})
            assert c.get(f"/v1/sandboxes/{sid}/execs/{eid}").status_code == 404  # execs die
            assert usage(second, key) == 1  # counted against its tenant again
            with Sandbox.connect(sid, url=second.url, api_key=key) as sb:
                assert sb.files.read("/mark") == b"x\n"
                assert sb.exec(["echo", "still here"]).stdout == b"still here\n"
            assert c.get(f"/v1/sandboxes/{sid}").json()["state"] == "terminated"
            assert usage(second, key) == 0
    finally:
        second.stop()


class _Cut(httpx.SyncByteStream):
    """A response body that breaks (ReadError) after ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit = inner, limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            yield chunk
            sent += len(chunk)
            if sent >= self.limit:
                raise httpx.ReadError("connection cut by the test")

    def close(self) -> None:
        self.inner.close()


class _AsyncCut(httpx.AsyncByteStream):
    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.inner:
            yield chunk
            sent += len(chunk)
            if sent >= self.limit:
                raise httpx.ReadError("connection cut by the test")

    async def aclose(self) -> None:
        await self.inner.aclose()


CUT_AFTER = 900  # bytes: past the start line of ``…/execs/stream`` (~400), a few events


class Flaky(httpx.HTTPTransport):
    """Cuts the first two exec output streams after a few events: the start's own stream
    (``…/execs/stream``), then the first one resumed from the offsets (``…/events``)."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith(("/events", "/execs/stream")):
            self.streams += 1
            if self.streams <= 2:
                response.stream = _Cut(response.stream, CUT_AFTER)
        return response


class AsyncFlaky(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.streams = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path.endswith(("/events", "/execs/stream")):
            self.streams += 1
            if self.streams <= 2:
                response.stream = _AsyncCut(response.stream, CUT_AFTER)
        return response


EXPECTED_OUT = b"".join(b"line-%d\n" % i for i in range(1, 41))
EXPECTED_ERR = b"".join(b"err-%d\n" % i for i in range(1, 41))


def test_the_sdk_resumes_a_dropped_stream_without_loss(server: ServerProcess) -> None:
    key = tenant_key(server, "flaky")
    flaky = Flaky()
    with Client(server.url, key, transport=flaky) as client:
        with Sandbox.create(pool=RUNC, client=client) as sb:
            seen: list[bytes] = []
            result = sb.exec(["sh", "-c", COUNT], on_stdout=seen.append)
            assert (result.exit_code, result.stdout, result.stderr) == (0, EXPECTED_OUT,
                                                                       EXPECTED_ERR)  # fmt: skip
            assert b"".join(seen) == EXPECTED_OUT
        assert flaky.streams >= 3  # cut twice, resumed each time

    async def main() -> None:
        aflaky = AsyncFlaky()
        async with AsyncClient(server.url, key, transport=aflaky) as client:
            async with AsyncSandbox.create(pool=RUNC, client=client, labels={"a": "1"}) as sb:
                result = await sb.exec(["sh", "-c", COUNT])
                assert (result.stdout, result.stderr) == (EXPECTED_OUT, EXPECTED_ERR)
                await sb.files.write("/f", b"async bytes")
                assert await sb.files.read("/f") == b"async bytes"
                assert [f.name for f in await sb.files.list("/") if f.name == "f"] == ["f"]
                found = await AsyncSandbox.list(labels={"a": "1"}, client=client)
                assert [s.id for s in found] == [sb.id]
                again = await AsyncSandbox.connect(sb.id, client=client)
                assert again.info.state == "running"
                stream = await sb.exec_stream(["cat"], stdin=True)
                await stream.write_stdin("in")
                await stream.close_stdin()
                assert (await stream.wait()).stdout == b"in"
            assert sb.info.state == "terminated"
            assert aflaky.streams >= 3

    asyncio.run(main())
    assert usage(server, key) == 0


class Recording(httpx.HTTPTransport):
    """Remembers the method and path of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def test_the_sdk_s_exec_is_one_request(server: ServerProcess) -> None:
    """``Sandbox.exec`` starts the command and reads its output to the exit in one request
    (the time to a first command is a create and that one request)."""
    key, recording = tenant_key(server, "onerequest"), Recording()
    with Client(server.url, key, transport=recording) as client, \
            Sandbox.create(pool=RUNC, client=client) as sb:  # fmt: skip
        before = len(recording.requests)
        result = sb.exec(["sh", "-c", "echo hi; exit 3"])
        assert (result.exit_code, result.stdout) == (3, b"hi\n")
        assert recording.requests[before:] == [f"POST /v1/sandboxes/{sb.id}/execs/stream"]
        stream = sb.exec_stream(["cat"], stdin=True)
        stream.write_stdin(b"x")
        stream.close_stdin()
        assert stream.wait().stdout == b"x"
        with sb.exec_stream(["sh", "-c", "echo early; sleep 30"]) as left:
            assert next(iter(left)).data == b"early\n"
        assert left._opened is None  # its connection went back, the exec runs on
        assert sb.client.send(Call("GET", f"/v1/sandboxes/{sb.id}/execs/{left.id}",
                                   lambda d: d["done"])) is False  # fmt: skip
    assert usage(server, key) == 0


def test_sigterm_mid_exec_ends_the_sandboxes_and_their_records(service_box: Box) -> None:
    database = f"sqlite:///{service_box.base}/sigterm.db"
    first = ServerProcess(service_box, database=database)
    key = tenant_key(first, "stopper")
    with http(first, key) as c:
        sid = c.post("/v1/sandboxes", json={"pool": RUNC}).json()["id"]
        eid = c.post(f"/v1/sandboxes/{sid}/execs", json={"command": ["sleep", "60"]}).json()["id"]
        with c.stream("GET", f"/v1/sandboxes/{sid}/execs/{eid}/events") as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 30
    second = ServerProcess(service_box, database=database)
    try:
        with http(second, key) as c:
            info = c.get(f"/v1/sandboxes/{sid}").json()
            assert (info["state"], info["reason"]) == ("terminated", "killed")
            assert usage(second, key) == 0
            assert c.get("/v1/sandboxes", params={"state": "running"}).json() == []
    finally:
        second.stop()
