"""Every API call the SDK makes, built once as a ``Call`` for both clients to send."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sandpool.client.models import ApiKey, CreatedKey, Me, Pool, RunResult, Tenant
from sandpool.client.transport import Call

__all__ = [
    "create_key",
    "create_tenant",
    "delete_tenant",
    "get_pool",
    "get_tenant",
    "list_keys",
    "list_pools",
    "list_tenants",
    "me",
    "revoke_key",
    "run",
]

RUN_TIMEOUT_MARGIN = 60.0  # seconds past the run's own timeout before the client gives up


def _seg(text: str) -> str:
    return quote(text, safe="")


def _some(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def run(command: Sequence[str], *, pool: str, image: str | None, env: Mapping[str, str] | None,
        workdir: str | None, cpu: float | None, memory: str | None, pids: int | None,
        disk: str | None, max_output: str | None, timeout: float | None,
        stdin: str | bytes | None) -> Call[RunResult]:  # fmt: skip
    """``POST /v1/runs``; output asked as base64 so that it comes back byte for byte."""
    limits = _some(cpu=cpu, memory=memory, pids=pids, disk=disk, maxOutput=max_output)
    text = stdin.decode() if isinstance(stdin, bytes) else stdin
    body = {"pool": pool, "command": list(command), "env": dict(env or {}), "limits": limits,
            "outputEncoding": "base64",
            **_some(image=image, workdir=workdir, timeout=timeout, stdin=text)}  # fmt: skip
    wait = None if timeout is None else timeout + RUN_TIMEOUT_MARGIN
    return Call("POST", "/v1/runs", RunResult.from_json, json=body, timeout=wait)


def list_pools() -> Call[list[Pool]]:
    """``GET /v1/pools``."""
    return Call("GET", "/v1/pools", lambda data: [Pool.from_json(p) for p in data])


def get_pool(name: str) -> Call[Pool]:
    """``GET /v1/pools/{name}``."""
    return Call("GET", f"/v1/pools/{_seg(name)}", Pool.from_json)


def me() -> Call[Me]:
    """``GET /v1/me``."""
    return Call("GET", "/v1/me", Me.from_json)


def create_tenant(name: str, *, concurrent: int | None, cpu: float | None,
                  memory: str | None, creates_per_second: float | None,
                  ) -> Call[Tenant]:  # fmt: skip
    """``POST /v1/tenants``."""
    quota = _some(concurrent=concurrent, cpu=cpu, memory=memory,
                  createsPerSecond=creates_per_second)  # fmt: skip
    return Call("POST", "/v1/tenants", Tenant.from_json, json={"name": name, "quota": quota})


def list_tenants() -> Call[list[Tenant]]:
    """``GET /v1/tenants``."""
    return Call("GET", "/v1/tenants", lambda data: [Tenant.from_json(t) for t in data])


def get_tenant(name: str) -> Call[Tenant]:
    """``GET /v1/tenants/{name}``."""
    return Call("GET", f"/v1/tenants/{_seg(name)}", Tenant.from_json)


def delete_tenant(name: str) -> Call[Tenant]:
    """``DELETE /v1/tenants/{name}``."""
    return Call("DELETE", f"/v1/tenants/{_seg(name)}", Tenant.from_json)


def create_key(tenant: str, *, name: str, expires_in: float | None) -> Call[CreatedKey]:
    """``POST /v1/keys``."""
    body = {"tenant": tenant, "name": name, **_some(expiresIn=expires_in)}
    return Call("POST", "/v1/keys", CreatedKey.from_json, json=body)


def list_keys(tenant: str | None) -> Call[list[ApiKey]]:
    """``GET /v1/keys[?tenant=NAME]``."""
    params = {"tenant": tenant} if tenant is not None else {}
    return Call("GET", "/v1/keys", lambda data: [ApiKey.from_json(k) for k in data],
                params=params)  # fmt: skip


def revoke_key(key_id: str) -> Call[ApiKey]:
    """``DELETE /v1/keys/{id}``."""
    return Call("DELETE", f"/v1/keys/{_seg(key_id)}", ApiKey.from_json)
