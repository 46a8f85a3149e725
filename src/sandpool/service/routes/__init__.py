"""The API's routes, one module per resource; each handler parses, calls the core, renders."""

from __future__ import annotations

from fastapi import APIRouter

from sandpool.service.routes import execs, files, health, keys, pools, runs, sandboxes, tenants

__all__ = ["ROUTERS"]

# Every router of the app, in the order the OpenAPI document lists them.
ROUTERS: tuple[APIRouter, ...] = (health.router, pools.router, runs.router, tenants.router,
                                  keys.router, sandboxes.router, execs.router,
                                  files.router)  # fmt: skip
