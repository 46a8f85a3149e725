"""The OpenAPI document: generated from the app, and checked into the repository as
``docs/openapi.json`` (a test fails when the two differ).

    python -m sandpool.service.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.openapi.utils import get_openapi

from sandpool.service.routes import ROUTERS

__all__ = ["document", "render"]


def document() -> dict[str, Any]:
    """The document of the app's routes, as served at ``/openapi.json`` (built without a
    server: no store, no runtime)."""
    from fastapi import FastAPI

    app = FastAPI()
    for router in ROUTERS:
        app.include_router(router)
    return get_openapi(title="sandpool", version="v1", routes=app.routes,
                       description="Run untrusted code in containers grouped into worker "
                                   "pools.")  # fmt: skip


def render() -> str:
    """The document as the checked-in file holds it."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
