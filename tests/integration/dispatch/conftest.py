"""A redis-server per test (``redis_server``) and a broker over it (``broker``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.dispatch.broker import Broker, DispatchSettings
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS, RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not HAVE_REDIS:
        pytest.skip(WHY_NO_REDIS)
    with tempfile.TemporaryDirectory(prefix="sandpool-redis-") as base:
        server = RedisServer(Path(base))
        yield server
        server.stop()


@pytest.fixture
def broker(redis_server: RedisServer) -> Broker:
    settings = DispatchSettings(lease=1.0, backlog_timeout=5.0, ack_timeout=30.0)
    return Broker.connect(redis_server.url, settings=settings)
