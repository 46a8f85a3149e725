"""Faults of the service's own engines, with real processes (PostgreSQL, Redis, a gateway on
PostgreSQL, a runc worker): PostgreSQL stopped (the API answers a 503 JSON error naming the
database, no traceback; after it returns the gateway serves again without a restart), and a
gateway restarted while a sandbox runs (the sandbox stays running on its worker, reachable
through the new gateway, its quota share counted again)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandpool.client import Client, Sandbox, ServiceUnavailable
from sandpool.service.auth_cache import CACHE_TTL_S
from tests.integration.conftest import Sandbox as Box
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.postgres_server import (
    HAVE_POSTGRES,
    WHY_NO_POSTGRES,
    PostgresServer,
)
from tests.integration.dispatch.processes import AUTH, Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS),
              pytest.mark.skipif(not HAVE_POSTGRES, reason=WHY_NO_POSTGRES)]  # fmt: skip

ADMIN = "sp_admin_" + "x" * 32  # the Gateway fixture's admin key
POOL = "performance"


@dataclass
class Setup:
    postgres: PostgresServer
    redis: RedisServer
    box: Box
    gateway: Gateway
    worker: Worker

    def key(self, tenant: str) -> str:
        with Client(self.gateway.url, ADMIN) as admin:
            admin.create_tenant(tenant)
            return admin.create_key(tenant).key

    def usage(self, key: str) -> int:
        with Client(self.gateway.url, key) as client:
            usage = client.me().usage
            assert usage is not None
            return int(usage["concurrent"])

    def held(self, sandbox_id: str) -> str | None:
        answer = httpx.get(f"{self.worker.address}/internal/v1/sandboxes/{sandbox_id}",
                           headers=AUTH, timeout=30)  # fmt: skip
        return str(answer.json()["state"]) if answer.status_code == 200 else None

    def restart_gateway(self) -> None:
        assert self.gateway.stop() == 0, self.gateway.text()[-2000:]
        self.gateway = Gateway(self.box, self.redis.url, port=self.gateway.port,
                               extra_args=["--database", self.postgres.url])  # fmt: skip


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    pytest.importorskip("psycopg")
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        postgres, redis = PostgresServer(), RedisServer(Path(redis_dir))
        gw_box, box = box_of(base, "gw"), box_of(base, "w")
        gateway = Gateway(gw_box, redis.url, extra_args=["--database", postgres.url])
        worker = Worker(box, POOL, gateway.url)
        found = Setup(postgres, redis, gw_box, gateway, worker)
        try:
            worker.registered()
            yield found
        finally:
            w_code = worker.stop()
            gw_code = found.gateway.stop()
            redis.stop()
            postgres.remove()
            left = gw_box.leftovers() + box.leftovers()
            for b in (gw_box, box):
                b.remove_parent_cgroups()
            assert w_code == 0, worker.text()[-2000:]
            assert gw_code == 0, found.gateway.text()[-2000:]
            assert not left, f"leaked: {left}"


def _until_ok(url: str, key: str, limit: float = 60) -> httpx.Response:
    deadline = time.monotonic() + limit
    while True:
        answer = httpx.get(f"{url}/v1/me", headers={"authorization": f"Bearer {key}"},
                           timeout=30)  # fmt: skip
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_postgresql_unavailable_is_a_clear_503_and_service_recovers(setup: Setup) -> None:
    key = setup.key("pg-outage")
    url = setup.gateway.url
    before = Sandbox.create(pool=POOL, url=url, api_key=key)
    setup.postgres.stop()
    time.sleep(
        CACHE_TTL_S + 0.5
    )  # the key's verification is no longer cached: it asks the database
    try:
        answer = httpx.get(f"{url}/v1/me", headers={"authorization": f"Bearer {key}"},
                           timeout=60)  # fmt: skip
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["code"] == "unavailable" and "database" in body["message"], body
        assert "Traceback" not in answer.text and "psycopg" not in answer.text
        assert httpx.get(f"{url}/readyz", timeout=60).status_code == 503
        with pytest.raises(ServiceUnavailable, match="database"):
            Sandbox.create(pool=POOL, url=url, api_key=key, timeout=60)
    finally:
        setup.postgres.start()
    assert _until_ok(url, key).status_code == 200
    with Sandbox.create(pool=POOL, url=url, api_key=key) as after:
        assert after.exec(["echo", "back"]).stdout == b"back\n"
        after.terminate()
    assert before.exec(["true"]).exit_code == 0
    before.terminate()
    before.close()
    assert setup.usage(key) == 0
    assert "Traceback" not in setup.gateway.text()


def test_a_restarted_gateway_still_reaches_the_running_sandboxes(setup: Setup) -> None:
    key = setup.key("gw-restart")
    sb = Sandbox.create(pool=POOL, url=setup.gateway.url, api_key=key)
    sb.files.write("/tmp/kept.txt", b"kept across the restart")
    setup.restart_gateway()
    assert setup.held(sb.id) == "running", setup.worker.text()[-3000:]
    assert sb.refresh().state == "running"
    assert sb.files.read("/tmp/kept.txt") == b"kept across the restart"
    assert sb.exec(["echo", "still here"]).stdout == b"still here\n"
    assert setup.usage(key) == 1  # the restarted gateway counts it again
    assert sb.terminate().state == "terminated"
    assert setup.held(sb.id) in (None, "terminated")
    assert setup.usage(key) == 0
    sb.close()
