"""The operators' web dashboard at ``/dashboard``: server-rendered pages (Jinja2, htmx
checked in, inline SVG charts), signed in with an API key; an admin sees everything, a
tenant its own.

state.py         one server's dashboard state; ``install`` mounts it on the app
session.py       sign-in sessions (HttpOnly, SameSite=Strict cookie -> API key)
pages.py         the routes: one small handler per page, ``render`` for all of them
source.py        the one adapter to the store's sandbox records and the SandboxManager
overview.py      the pools page's rows and charts
failures.py      recent failures grouped by cause
figures.py       sandbox figures shared by the charts and ``/metrics``
history.py       sandboxes by state over time (a sampler thread)
charts.py        inline SVG charts
doctor_cache.py  ``sandpool doctor`` per pool, cached
workers.py       the workers (today the local one; the hook for a registry)
words.py         state reasons and failure causes in words, with fixes
templating.py    template filters
"""

from __future__ import annotations

from sandpool.service.dashboard.state import DashboardState, install

__all__ = ["DashboardState", "install"]
