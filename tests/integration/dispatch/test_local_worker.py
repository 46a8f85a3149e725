"""``sandpool server --redis URL --local-worker``: the gateway starts a worker of each pool
itself; sandboxes of both runtimes run; SIGTERM stops the workers first; nothing leaks."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import Gateway, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc,
              pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)]  # fmt: skip


def test_a_gateway_with_local_workers_runs_both_pools(tmp_path: Path) -> None:
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        box = box_of(base, "gw")
        gateway = Gateway(box, redis.url, extra_args=["--local-worker"])
        try:
            deadline = time.monotonic() + 60
            while gateway.text().count("registered with") < 2:
                assert time.monotonic() < deadline, gateway.text()[-3000:]
                time.sleep(0.2)
            kernels = {}
            for pool in ("performance", "default"):
                made = gateway.create(pool)
                assert made.status_code == 201, made.text
                kernels[pool] = gateway.exec(made.json()["sandbox"]["id"], "uname", "-r")[1]
            assert kernels["performance"].strip() == os.uname().release
            assert kernels["default"].strip() != os.uname().release
        finally:
            code = gateway.stop()
            redis.stop()
            left = box.leftovers()
            box.remove_parent_cgroups()
        assert code == 0, gateway.text()[-3000:]
        assert "local worker of pool default" in gateway.text()
        assert not left, left  # the workers terminated their sandboxes on the way out
