"""The dashboard's pages under ``/dashboard``: sign in (an API key for a session cookie, or
``Authorization: Bearer`` on any page), pools, workers, sandboxes, one sandbox with its
execs' live output, failures, and terminate/pause/resume behind a confirmation page.

Handlers are sync (FastAPI runs them in worker threads: the store and the runtime block);
each answers with ``Server-Timing: app;dur=<ms>``, its own time to build the page."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from sandpool.errors import (
    Conflict,
    NotFound,
    SandboxNotFound,
    SandboxStateError,
    SandpoolError,
    ServiceError,
    Unauthenticated,
)
from sandpool.service.apikeys import Principal
from sandpool.service.context import context_of
from sandpool.service.dashboard.failures import recent_failures, run_failures
from sandpool.service.dashboard.overview import charts_of, pool_rows
from sandpool.service.dashboard.session import COOKIE
from sandpool.service.dashboard.source import ACTIONS
from sandpool.service.dashboard.state import dashboard_of
from sandpool.service.dashboard.workers import Registry, pool_workers_diagnosis, workers_of
from sandpool.service.problems import as_service_error
from sandpool.store.sandbox_listing import SandboxFilter

__all__ = ["router"]

router = APIRouter(prefix="/dashboard", include_in_schema=False)
STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 50
Build = Callable[[Principal], tuple[str, dict[str, Any]] | Response]


class SignInNeeded(Exception):
    """No usable session and no Authorization header: the login page."""


def viewer_of(request: Request) -> Principal:
    """The caller: its Bearer key, else its session's key (checked again on every request)."""
    context, dashboard = context_of(request), dashboard_of(request)
    header = request.headers.get("authorization")
    if header:
        return context.auth.principal(header)
    token = request.cookies.get(COOKIE)
    key = dashboard.sessions.key_of(token)
    if key is None:
        raise SignInNeeded
    try:
        return context.auth.principal(f"Bearer {key}")
    except Unauthenticated:  # revoked or expired since sign-in
        dashboard.sessions.close(token)
        raise SignInNeeded from None


def page_error(exc: SandpoolError) -> ServiceError:
    """A failure as the page states it: a sandbox or exec that is gone is 404, one in the
    wrong state for the action 409, the rest as the API states them."""
    if isinstance(exc, SandboxNotFound):
        return NotFound(exc.message, hint=exc.hint or "")
    if isinstance(exc, SandboxStateError):
        return Conflict(exc.message, hint=exc.hint or "")
    return as_service_error(exc)


def render(request: Request, build: Build, status: int = 200) -> Response:
    """The page ``build`` names, for the signed-in viewer (or the login page, or an error)."""
    started = time.perf_counter()
    viewer: Principal | None = None
    try:
        viewer = viewer_of(request)
        built = build(viewer)
        if isinstance(built, Response):
            return built
        template, values = built
    except SignInNeeded:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/dashboard/login?next={target}", status_code=303)
    except SandpoolError as exc:
        error = page_error(exc)
        template, values, status = "error.html", {"error": error}, error.status
    values |= {"viewer": viewer, "path": request.url.path}
    response = dashboard_of(request).templates.TemplateResponse(request, template, values,
                                                                status_code=status)  # fmt: skip
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("")
def home() -> Response:
    """The pools page is the home page."""
    return RedirectResponse("/dashboard/pools", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The checked-in htmx and the style sheet (no CDN)."""
    path = STATIC / name
    if "/" in name or not path.is_file():
        raise NotFound(f"no static file '{name}'", hint="")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_page(request: Request, next: str = "/dashboard/pools") -> Response:
    """The sign-in form."""
    templates = dashboard_of(request).templates
    return templates.TemplateResponse(
        request, "login.html", {"next": next, "error": None, "viewer": None, "path": ""}
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key; on success a session cookie and a redirect to ``next``."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    key = (form.get("key") or [""])[0].strip()
    target = (form.get("next") or ["/dashboard/pools"])[0]
    if not target.startswith("/dashboard"):  # never redirect off the dashboard
        target = "/dashboard/pools"
    dashboard = dashboard_of(request)
    try:
        context_of(request).auth.principal(f"Bearer {key}")
    except Unauthenticated as exc:
        return dashboard.templates.TemplateResponse(
            request, "login.html", {"next": target, "error": exc.message, "viewer": None,
                                    "path": ""}, status_code=401)  # fmt: skip
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        dashboard.sessions.open(key),
        max_age=int(dashboard.sessions.max_age),
        httponly=True,
        samesite="strict",
        path="/dashboard",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session."""
    dashboard_of(request).sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


@router.get("/pools")
def pools(request: Request) -> Response:
    """Every pool: runtime, limits, warm pool, live counts, doctor; and the charts."""
    dashboard = dashboard_of(request)

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        rows = pool_rows(dashboard.source, viewer, _registry(request))
        return "pools.html", {"pools": rows, "charts": charts_of(dashboard, viewer)}

    return render(request, build)


@router.get("/pools/{name}/doctor")
def pool_doctor(request: Request, name: str) -> Response:
    """One pool's cached doctor result (a fragment; polls while the checks run)."""
    dashboard = dashboard_of(request)

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        context_of(request).config.pool(name)
        registry = _registry(request)
        if registry is not None and dashboard.source.manager() is None:  # a gateway
            return "doctor.html", {"name": name,
                                   "diagnosis": pool_workers_diagnosis(registry, name)}  # fmt: skip
        return "doctor.html", {"name": name, "diagnosis": dashboard.doctor.get(name)}

    return render(request, build)


@router.get("/workers")
def workers(request: Request) -> Response:
    """The workers: this server's own and, on a gateway, the registered ones."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        return "workers.html", {"workers": workers_of(source.context, source.manager(),
                                                      _registry(request))}  # fmt: skip

    return render(request, build)


def _registry(request: Request) -> Registry | None:
    """The dispatch's worker registry on a gateway (``--redis``), else None."""
    dispatcher = getattr(request.app.state, "dispatcher", None)
    return None if dispatcher is None else cast(Registry, dispatcher.broker)


def _filter(request: Request) -> tuple[SandboxFilter, dict[str, str], int]:
    args = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    tenant_id = None
    if "tenant" in args:
        tenant_id = context_of(request).store.tenants.by_name(args["tenant"]).id
    key, sep, value = args.get("label", "").partition("=")
    label = (key, value) if sep and key else None
    page = int(args["page"]) if args.get("page", "").isdigit() else 1
    return SandboxFilter(tenant_id, args.get("pool"), args.get("state"), label), args, max(1, page)


@router.get("/sandboxes")
def sandboxes(request: Request) -> Response:
    """The sandboxes, filtered by pool, tenant, state and label, a page at a time."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        wanted, args, page = _filter(request)
        rows, found = source.page(viewer, wanted, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        pages = max(1, -(-found.total // PAGE_SIZE))
        query = urlencode({k: v for k, v in args.items() if k != "page"})
        return "sandboxes.html", {"rows": rows, "total": found.total, "page": page,
                                  "pages": pages, "args": args,
                                  "query": query,
                                  "pool_names": sorted(source.context.config.pools)}  # fmt: skip

    return render(request, build)


@router.get("/sandboxes/{sandbox_id}")
def sandbox(request: Request, sandbox_id: str) -> Response:
    """One sandbox: state and reason, execs with exit codes and live output, usage."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        return "sandbox.html", {"detail": source.detail(viewer, sandbox_id)}

    return render(request, build)


@router.get("/sandboxes/{sandbox_id}/execs/{exec_id}")
def exec_output(request: Request, sandbox_id: str, exec_id: str) -> Response:
    """An exec's output so far (a fragment that polls itself until the exec ended)."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        output = source.exec_output(viewer, sandbox_id, exec_id)
        return "exec_output.html", {"sandbox_id": sandbox_id, "output": output}

    return render(request, build)


@router.get("/sandboxes/{sandbox_id}/{action}")
def confirm(request: Request, sandbox_id: str, action: str) -> Response:
    """The confirmation page of an action."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        if action not in ACTIONS:
            raise NotFound(f"no action '{action}'", hint=f"one of {', '.join(ACTIONS)}")
        source.record(viewer, sandbox_id)
        return "confirm.html", {"sandbox_id": sandbox_id, "action": action}

    return render(request, build)


@router.post("/sandboxes/{sandbox_id}/{action}")
def act(request: Request, sandbox_id: str, action: str) -> Response:
    """Do the confirmed action, then back to the sandbox's page."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> Response:
        source.act(viewer, sandbox_id, action)
        return RedirectResponse(f"/dashboard/sandboxes/{sandbox_id}", status_code=303)

    return render(request, build)


@router.get("/failures")
def failures(request: Request) -> Response:
    """Recent failures grouped by cause, with the fix."""
    source = dashboard_of(request).source

    def build(viewer: Principal) -> tuple[str, dict[str, Any]] | Response:
        runs = run_failures(source) if viewer.tenant is None else {}
        return "failures.html", {"groups": recent_failures(source, viewer), "runs": runs}

    return render(request, build)
