"""The gateway's internal endpoints, for workers (and operators) holding the worker token:

    POST /internal/v1/workers                       register {workerId, spec, sandboxes}
    POST /internal/v1/workers/{id}/heartbeat        renew the lease, report ended sandboxes
    POST /internal/v1/workers/{id}/pull?count&wait  long-poll for requests (deliveries)
    POST /internal/v1/workers/{id}/ack              a delivery's outcome
    POST /internal/v1/sandboxes                     create a sandbox through the dispatch
    *    /internal/v1/sandboxes/{id}[/...]          proxied to the worker holding it

The public sandbox routes (``/v1/sandboxes``) call the same ``Dispatcher`` and
``WorkerProxy`` with the tenant's checks in front; these exist so workers can reach the
gateway and an operator (or a test) can drive the dispatch without a tenant.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from sandpool.dispatch.broker import Broker
from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.models import Delivery, Resources, WorkerSpec, request_from_json
from sandpool.dispatch.proxy import WorkerProxy
from sandpool.dispatch.worker_api import bearer_check
from sandpool.errors import InvalidRequest

__all__ = ["install_dispatch"]

MAX_WAIT = 20.0  # seconds a pull may wait for work
PREFIX = "/internal/v1"


def _spec(body: dict[str, Any]) -> tuple[str, WorkerSpec, list[tuple[str, str, Resources]]]:
    try:
        worker_id = str(body["workerId"])
        spec = WorkerSpec.from_json(dict(body["spec"]))
        held = [(str(s["id"]), str(s["pool"]), Resources.from_json(dict(s["need"])))
                for s in body.get("sandboxes") or ()]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"bad worker registration: {exc}") from exc
    return worker_id, spec, held


def _warm(body: dict[str, Any]) -> int | None:
    """The worker's ready warm sandboxes, if it said (a count; anything else is ignored)."""
    warm = body.get("warm")
    return warm if isinstance(warm, int) and not isinstance(warm, bool) else None


def _worker_routes(router: APIRouter, broker: Broker) -> None:
    @router.post("/workers")
    def register(body: dict[str, Any]) -> dict[str, Any]:
        worker_id, spec, held = _spec(body)
        status = broker.register(worker_id, spec, held)
        if status == "ok" and body.get("warm") is not None:
            broker.heartbeat(worker_id, _warm(body))
        return {"status": status, "lease": broker.settings.lease}

    @router.post("/workers/{worker_id}/heartbeat")
    def heartbeat(worker_id: str, body: dict[str, Any]) -> dict[str, Any]:
        status = broker.heartbeat(worker_id, _warm(body))
        if status == "ok":
            for ended in body.get("ended") or ():
                broker.release(worker_id, str(ended["id"]), str(ended.get("state")),
                               str(ended.get("reason")))  # fmt: skip
        return {"status": status}

    @router.post("/workers/{worker_id}/pull")
    def pull(worker_id: str, count: int = 16, wait: float = 10.0,
             recover: bool = True) -> dict[str, Any]:  # fmt: skip
        found = broker.pull(worker_id, max(1, min(count, 256)), max(0.0, min(wait, MAX_WAIT)),
                            recover)  # fmt: skip
        return {"deliveries": [d.to_json() for d in found]}

    @router.post("/workers/{worker_id}/ack")
    def ack(worker_id: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            delivery = Delivery.from_json(dict(body["delivery"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"bad acknowledgement: {exc}") from exc
        accepted = broker.ack(worker_id, delivery, dict(body.get("outcome") or {}),
                              sandbox_id=str(body.get("sandboxId") or ""),
                              address=str(body.get("address") or ""),
                              pool=str(body.get("pool") or ""))  # fmt: skip
        return {"accepted": accepted}


def _sandbox_routes(router: APIRouter, dispatcher: Dispatcher, proxy: WorkerProxy) -> None:
    @router.post("/sandboxes", status_code=201)
    async def create(body: dict[str, Any]) -> JSONResponse:
        try:
            request = request_from_json(body)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"bad sandbox request: {exc}") from exc
        outcome = await anyio.to_thread.run_sync(dispatcher.create, request)
        return JSONResponse(outcome, status_code=201)

    @router.api_route("/sandboxes/{sandbox_id}", methods=["GET", "DELETE"])
    async def one(sandbox_id: str, request: Request) -> Response:
        address = await anyio.to_thread.run_sync(dispatcher.locate, sandbox_id)
        return await proxy.forward(request, address, f"{PREFIX}/sandboxes/{sandbox_id}")

    @router.api_route("/sandboxes/{sandbox_id}/{rest:path}", methods=["GET", "POST", "PUT"])
    async def inside(sandbox_id: str, rest: str, request: Request) -> Response:
        address = await anyio.to_thread.run_sync(dispatcher.locate, sandbox_id)
        return await proxy.forward(request, address, f"{PREFIX}/sandboxes/{sandbox_id}/{rest}")


def install_dispatch(app: FastAPI, dispatcher: Dispatcher, token: str) -> WorkerProxy:
    """Add the internal endpoints to the gateway's ``app``; the proxy (to close at the end)."""
    proxy = WorkerProxy(token)
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(bearer_check(token))])
    _worker_routes(router, dispatcher.broker)
    _sandbox_routes(router, dispatcher, proxy)
    app.include_router(router)
    return proxy
