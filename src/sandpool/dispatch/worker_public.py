"""A worker's side of the public sandbox API: the gateway checks the tenant (and that the
sandbox is theirs), then forwards the request here (``dispatch.public_routes``) or calls the
controls below (``dispatch.remote_sandboxes``). Everything is under ``/internal/v1/api`` and
needs the worker token:

    *      /internal/v1/api/v1/sandboxes/{id}/execs…, …/files…   the public exec and file
                                                                  routes themselves, run here
    GET    /internal/v1/api/sandboxes/{id}                        the sandbox (its record JSON)
    GET    /internal/v1/api/sandboxes/{id}/usage                  its cpu, memory, disk now
    GET    /internal/v1/api/sandboxes/{id}/execs                  its execs (the dashboard)
    GET    /internal/v1/api/sandboxes/{id}/execs/{exec}/output    an exec's output so far
    DELETE /internal/v1/api/sandboxes/{id}                        terminate it; its final record
    POST   /internal/v1/api/sandboxes/{id}/pause, /resume         freeze, thaw
    PUT    /internal/v1/api/sandboxes/{id}/ttl {"ttl"}            end it ttl seconds from now
    PUT    /internal/v1/api/sandboxes/{id}/network {"network", "allow"}

Errors are the public API's (``{"code", "message", "hint"}`` and its statuses), so the
gateway passes them on as they are.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Depends, FastAPI
from starlette.routing import Mount

from sandpool.dispatch.worker_api import bearer_check
from sandpool.errors import InvalidNetworkPolicy, InvalidRequest
from sandpool.sandbox import EndReason, SandboxInfo, SandboxManager
from sandpool.sandbox.usage import read_usage
from sandpool.service.dashboard.exec_output import exec_snapshot, summaries_to_json
from sandpool.service.metrics import ServiceMetrics
from sandpool.service.problems import install_handlers
from sandpool.service.routes import execs, files
from sandpool.service.routes.files import upload_limit
from sandpool.service.routes.sandboxes import access
from sandpool.service.sandbox_backend import SandboxAccess
from sandpool.service.sandbox_errors import check_network_change
from sandpool.store import TenantRecord

__all__ = ["API_PREFIX", "mount_public_api"]

API_PREFIX = "/internal/v1/api"
_GATEWAY = TenantRecord(id="", name="(gateway)", created_at=0.0)  # the gateway checked the owner


class _WorkerAccess:
    """Every sandbox of this worker's manager (the gateway did the tenant's check)."""

    def __init__(self, manager: SandboxManager, metrics: ServiceMetrics) -> None:
        self._manager, self._metrics = manager, metrics

    @property
    def manager(self) -> SandboxManager:
        return self._manager

    @property
    def metrics(self) -> ServiceMetrics:
        return self._metrics

    def pool_of(self, tenant: TenantRecord, sandbox_id: str) -> str:
        return self._manager.get(sandbox_id).pool  # SandboxNotFound: 404


def _controls(app: FastAPI, manager: SandboxManager) -> None:
    @app.get("/sandboxes/{sandbox_id}")
    def get(sandbox_id: str) -> dict[str, Any]:
        return manager.get(sandbox_id).to_record()

    @app.get("/sandboxes/{sandbox_id}/usage")
    def usage(sandbox_id: str) -> dict[str, Any]:
        manager.get(sandbox_id)  # SandboxNotFound: 404
        return read_usage(manager.state_dir, sandbox_id).to_json()

    @app.get("/sandboxes/{sandbox_id}/execs")
    def exec_list(sandbox_id: str) -> list[dict[str, Any]]:
        return summaries_to_json(manager.execs(sandbox_id))

    @app.get("/sandboxes/{sandbox_id}/execs/{exec_id}/output")
    def exec_output(sandbox_id: str, exec_id: str) -> dict[str, Any]:
        return exec_snapshot(manager, sandbox_id, exec_id).to_json()

    @app.delete("/sandboxes/{sandbox_id}")
    def terminate(sandbox_id: str) -> dict[str, Any]:
        info = manager.terminate(sandbox_id, EndReason.KILLED)
        return _record(info)

    @app.post("/sandboxes/{sandbox_id}/pause")
    def pause(sandbox_id: str) -> dict[str, Any]:
        return manager.pause(sandbox_id).to_record()

    @app.post("/sandboxes/{sandbox_id}/resume")
    def resume(sandbox_id: str) -> dict[str, Any]:
        return manager.resume(sandbox_id).to_record()

    @app.put("/sandboxes/{sandbox_id}/ttl")
    def set_ttl(sandbox_id: str, body: dict[str, float]) -> dict[str, Any]:
        return manager.set_ttl(sandbox_id, float(body["ttl"])).to_record()

    @app.put("/sandboxes/{sandbox_id}/network")
    def set_network(sandbox_id: str, body: dict[str, Any]) -> dict[str, Any]:
        allow = body.get("allow")
        check_network_change(manager.get(sandbox_id), body.get("network"))
        try:
            manager.set_network(sandbox_id, body.get("network"),
                                None if allow is None else tuple(allow))  # fmt: skip
        except InvalidNetworkPolicy as exc:
            raise InvalidRequest(f"allow: {exc.message}", hint=exc.hint, field="allow") from exc
        return manager.get(sandbox_id).to_record()


def _record(info: SandboxInfo) -> dict[str, Any]:
    record = info.to_record()
    record["ended_at"] = record.get("ended_at") or time.time()
    return record


def mount_public_api(app: FastAPI, manager: SandboxManager, token: str, max_upload: int,
                     metrics: ServiceMetrics | None = None) -> None:  # fmt: skip
    """Mount the worker's side of the public API on its internal ``app`` (its execs counted
    in ``metrics``)."""
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(bearer_check(token))])  # fmt: skip
    metrics = metrics or ServiceMetrics()
    worker_access = _WorkerAccess(manager, metrics)

    def override() -> tuple[SandboxAccess, TenantRecord]:
        return worker_access, _GATEWAY

    api.dependency_overrides[access] = override
    api.dependency_overrides[upload_limit] = lambda: max_upload
    api.include_router(execs.router)
    api.include_router(files.router)
    _controls(api, manager)
    install_handlers(api, metrics)
    app.router.routes.insert(0, Mount(API_PREFIX, app=api))  # before the "/" mount of the rest
