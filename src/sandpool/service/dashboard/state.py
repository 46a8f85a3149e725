"""The dashboard's per-server state: sessions, the source, the cached doctor results and the
history sampler; ``install`` mounts the pages on an app and exports the sandbox figures."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates

from sandpool.service.context import ServiceContext
from sandpool.service.dashboard.doctor_cache import DoctorCache
from sandpool.service.dashboard.figures import SandboxCollector
from sandpool.service.dashboard.history import StateHistory
from sandpool.service.dashboard.session import SessionBook
from sandpool.service.dashboard.source import DashboardSource
from sandpool.service.dashboard.templating import add_filters

__all__ = ["DashboardState", "dashboard_of", "install"]

HERE = Path(__file__).parent


@dataclass
class DashboardState:
    """One server's dashboard state."""

    source: DashboardSource
    sessions: SessionBook
    doctor: DoctorCache
    history: StateHistory
    templates: Jinja2Templates


def install(app: FastAPI, context: ServiceContext) -> DashboardState:
    """Mount ``/dashboard`` on ``app``; register the sandbox figures on ``/metrics`` (unless
    another part of the server exports metrics of those names already)."""
    from sandpool.service.dashboard.pages import router

    source = DashboardSource(context)
    templates = Jinja2Templates(directory=HERE / "templates")
    add_filters(templates.env)
    state = DashboardState(source, SessionBook(), DoctorCache(context.config),
                           StateHistory(source.counts_by_tenant), templates)  # fmt: skip
    # names taken (another part exports them): the charts read the same figures anyway
    with contextlib.suppress(ValueError):
        context.metrics.registry.register(SandboxCollector(source.infos, source.remote_counts))
    app.state.dashboard = state
    app.include_router(router)
    state.history.start()
    return state


def dashboard_of(request: Request) -> DashboardState:
    """The app's dashboard state."""
    state = request.app.state.dashboard
    assert isinstance(state, DashboardState)
    return state
