"""The public API (the SDK, as users see it) through a gateway with a runc worker vs. the
single-process server (``sandpool server``, no Redis), in the same run, alternating: time to
first command (``Sandbox.create`` + a first exec ``true``) and an exec round trip (``echo``)
on a running sandbox. Part of ``python -m bench.dispatch``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import Gateway, Worker, box_of
from tests.integration.dispatch.redis_server import RedisServer
from tests.integration.service.conftest import ServerProcess

from bench.measure import alternate, summary
from sandpool.client import Client, Sandbox

ADMIN = "sp_admin_" + "x" * 32  # the Gateway fixture's admin key, given to both servers
QUOTA = "gateway:\n  tenantQuota: {concurrent: 64, createsPerSecond: 1000}\n"
POOL = "performance"


def _key(url: str) -> str:
    with Client(url, ADMIN) as admin:
        admin.create_tenant("bench")
        return admin.create_key("bench").key


def _first_command(url: str, key: str) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        sb = Sandbox.create(pool=POOL, url=url, api_key=key)
        assert sb.exec(["true"]).exit_code == 0
        took = time.perf_counter() - start
        sb.terminate()
        sb.close()
        return took

    return once


def _round_trip(sb: Sandbox) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        assert sb.exec(["echo", "hi"]).stdout == b"hi\n"
        return time.perf_counter() - start

    return once


def _samples(urls: dict[str, str], n: int) -> dict[str, Any]:
    keys = {name: _key(url) for name, url in urls.items()}
    first = alternate({n_: _first_command(u, keys[n_]) for n_, u in urls.items()},
                      max(3, n // 5), warmup=1)  # fmt: skip
    held = {name: Sandbox.create(pool=POOL, url=u, api_key=keys[name]) for name, u in urls.items()}
    try:
        trips = alternate({name: _round_trip(sb) for name, sb in held.items()}, n)
    finally:
        for sb in held.values():
            sb.terminate()
            sb.close()
    result: dict[str, Any] = {f"first_command_{k}": summary(v) for k, v in first.items()}
    result |= {f"exec_{k}": summary(v) for k, v in trips.items()}
    for what in ("first_command", "exec"):
        result[f"{what}_hop_p50_ms"] = round(result[f"{what}_gateway"]["p50_ms"]
                                             - result[f"{what}_single"]["p50_ms"], 2)  # fmt: skip
    return result


def public_api(n: int) -> dict[str, Any]:
    """Gateway + runc worker vs. the single-process server, through the SDK."""
    with reachable_tmp_dir() as base, tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer(Path(redis_dir))
        boxes = [box_of(base, name) for name in ("gw", "w", "one")]
        for box in boxes:
            box.config_file.write_text(box.config_file.read_text() + QUOTA)
        gateway = Gateway(boxes[0], redis.url)
        worker = Worker(boxes[1], POOL, gateway.url)
        single = ServerProcess(boxes[2], env={"SANDPOOL_ADMIN_KEY": ADMIN})
        try:
            worker.registered()
            return _samples({"gateway": gateway.url, "single": single.url}, n)
        finally:
            worker.stop()
            gateway.stop()
            single.stop()
            redis.stop()
            for box in boxes:
                box.remove_parent_cgroups()
