"""The sandbox, exec and file calls of the SDK, built once as a ``Call`` for both twins
(the streamed ones, exec output and file content, say only where they go)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from sandpool.client.sandbox_models import FileInfo, SandboxInfo
from sandpool.client.transport import Call
from sandpool.errors import ServiceError

__all__ = [
    "content_path",
    "create",
    "events_path",
    "exec_path",
    "files_call",
    "get",
    "list_sandboxes",
    "sandbox_call",
    "start_exec",
    "started_exec",
    "stream_exec",
]

CREATE_TIMEOUT = 300.0  # seconds: a create waits for the container to start


def _seg(text: str) -> str:
    return quote(text, safe="")


def _some(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _path(sandbox_id: str) -> str:
    return f"/v1/sandboxes/{_seg(sandbox_id)}"


def create(*, pool: str, image: str | None, ttl: float | None, idle_timeout: float | None,
           cpu: float | None, memory: str | None, pids: int | None, disk: str | None,
           env: Mapping[str, str] | None, workdir: str | None,
           labels: Mapping[str, str] | None, network: str | None = None,
           allow: Sequence[str] | None = None) -> Call[SandboxInfo]:  # fmt: skip
    """``POST /v1/sandboxes`` (never retried once sent: it is not idempotent)."""
    body = {"pool": pool, "env": dict(env or {}), "labels": dict(labels or {}),
            "limits": _some(cpu=cpu, memory=memory, pids=pids, disk=disk),
            **_some(image=image, ttl=ttl, idleTimeout=idle_timeout, workdir=workdir,
                    network=network, allow=None if allow is None else list(allow))}  # fmt: skip
    return Call("POST", "/v1/sandboxes", SandboxInfo.from_json, json=body,
                timeout=CREATE_TIMEOUT)  # fmt: skip


def get(sandbox_id: str) -> Call[SandboxInfo]:
    """``GET /v1/sandboxes/{id}``."""
    return Call("GET", _path(sandbox_id), SandboxInfo.from_json)


def list_sandboxes(*, labels: Mapping[str, str] | None, state: str | None,
                   pool: str | None) -> Call[list[SandboxInfo]]:  # fmt: skip
    """``GET /v1/sandboxes?label=K=V&state=&pool=``."""
    params: dict[str, Any] = _some(state=state, pool=pool)
    if labels:
        params["label"] = [f"{k}={v}" for k, v in labels.items()]
    return Call("GET", "/v1/sandboxes", lambda data: [SandboxInfo.from_json(s) for s in data],
                params=params)  # fmt: skip


def sandbox_call(method: str, sandbox_id: str, action: str = "",
                 json: Any = None) -> Call[SandboxInfo]:  # fmt: skip
    """pause, resume, ttl (PUT) or terminate (DELETE) of one sandbox."""
    path = _path(sandbox_id) + (f"/{action}" if action else "")
    return Call(method, path, SandboxInfo.from_json, json=json, timeout=120.0)


def network_call(sandbox_id: str, network: str | None,
                 allow: Sequence[str] | None) -> Call[SandboxInfo]:  # fmt: skip
    """``PUT /v1/sandboxes/{id}/network``: change a running sandbox's network policy."""
    body = _some(network=network, allow=None if allow is None else list(allow))
    return sandbox_call("PUT", sandbox_id, "network", json=body)


def exec_path(sandbox_id: str, exec_id: str = "") -> str:
    """``/v1/sandboxes/{id}/execs[/{exec}]``."""
    return _path(sandbox_id) + "/execs" + (f"/{_seg(exec_id)}" if exec_id else "")


def events_path(sandbox_id: str, exec_id: str) -> str:
    """The NDJSON output stream of one exec."""
    return exec_path(sandbox_id, exec_id) + "/events"


def start_exec(sandbox_id: str, command: Sequence[str], *, env: Mapping[str, str] | None,
               cwd: str | None, timeout: float | None, user: str | None,
               stdin: bool) -> Call[str]:  # fmt: skip
    """``POST …/execs``: the exec id."""
    body = {"command": list(command), "env": dict(env or {}), "stdin": stdin,
            **_some(cwd=cwd, timeout=timeout, user=user)}  # fmt: skip
    return Call("POST", exec_path(sandbox_id), lambda data: str(data["id"]), json=body)


def stream_exec(start: Call[str], timeout: httpx.Timeout) -> Call[str]:
    """``POST …/execs/stream``: ``start``, answered by its output stream in the same request
    (the first line names the exec: ``started_exec``)."""
    return replace(start, path=start.path + "/stream", timeout=timeout)


def started_exec(line: str | None) -> str:
    """The exec id in a stream's first line (``{"type": "start", "exec": {…}}``)."""
    try:
        event = json.loads(line or "")
        if event.get("type") == "start":
            return str(event["exec"]["id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise ServiceError(f"the server answered the exec start with {(line or '')[:80]!r}",
                       hint="is the server the same sandpool version as this SDK?")  # fmt: skip


def content_path(sandbox_id: str) -> str:
    """Where a file's bytes are read (GET) and written (PUT), with ``?path=``."""
    return _path(sandbox_id) + "/files/content"


def files_call(method: str, sandbox_id: str, action: str, *, params: dict[str, Any] | None = None,
               json: Any = None) -> Call[Any]:  # fmt: skip
    """list (GET ""), stat (GET "stat"), remove (DELETE ""), mkdir, rename (POST)."""
    path = _path(sandbox_id) + "/files" + (f"/{action}" if action else "")

    def read(data: Any) -> Any:
        if isinstance(data, list):
            return [FileInfo.from_json(f) for f in data]
        return FileInfo.from_json(data) if data else None

    return Call(method, path, read, json=json, params=params or {}, timeout=120.0)
