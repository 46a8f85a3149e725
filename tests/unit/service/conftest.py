"""In-process API fixtures: the app over a fake executor, driven by Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sandpool.service.app import create_app
from tests.unit.service.fakes import ADMIN_KEY, FakeExecutor, make_context

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Api:
    """A TestClient with helpers to make tenants and keys."""

    def __init__(self, client: TestClient, context: Any, executor: FakeExecutor) -> None:
        self.http, self.context, self.executor = client, context, executor

    def tenant(self, name: str, **quota: Any) -> dict[str, str]:
        """Create tenant ``name`` and return the headers of a fresh key of it."""
        made = self.http.post("/v1/tenants", json={"name": name, "quota": quota}, headers=ADMIN)
        assert made.status_code == 201, made.text
        key = self.http.post("/v1/keys", json={"tenant": name}, headers=ADMIN)
        assert key.status_code == 201, key.text
        return {"Authorization": f"Bearer {key.json()['key']}"}


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """``make_api(executor=..., gateway=...)``: a running app (lifespan entered)."""
    stack: list[TestClient] = []

    def make(executor: FakeExecutor | None = None, gateway: str = "") -> Api:
        executor = executor or FakeExecutor()
        context = make_context(tmp_path, executor, gateway)
        client = TestClient(create_app(context), raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return Api(client, context, executor)

    yield make
    for client in stack:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The app with a fake executor that answers at once."""
    return make_api()
