"""When a gateway reaps lost workers: not in its first two leases (the workers' leases may
have run out while no gateway answered their heartbeats), and not once it is stopping (it
refuses their heartbeats then). A fake broker counts the passes."""

from __future__ import annotations

import time
from typing import Any, cast

from sandpool.dispatch.broker import Broker, DispatchSettings, ReapReport
from sandpool.dispatch.gateway import STARTUP_GRACE, Dispatcher

LEASE = 0.2


class CountingBroker:
    def __init__(self) -> None:
        self.settings = DispatchSettings(lease=LEASE)
        self.reaps: list[float] = []

    def reap(self) -> ReapReport:
        self.reaps.append(time.monotonic())
        return ReapReport()

    def place(self, *args: Any) -> int:
        return 0


def _dispatcher() -> tuple[Dispatcher, CountingBroker]:
    broker = CountingBroker()
    return Dispatcher(cast(Broker, broker)), broker


def test_a_starting_gateway_waits_its_grace_before_the_first_reap() -> None:
    dispatcher, broker = _dispatcher()
    started = time.monotonic()
    dispatcher.start()
    try:
        deadline = started + 30
        while not broker.reaps:
            assert time.monotonic() < deadline, "never reaped"
            time.sleep(0.02)
    finally:
        dispatcher.close()
    assert broker.reaps[0] - started >= STARTUP_GRACE * LEASE


def test_a_stopping_gateway_reaps_no_more() -> None:
    dispatcher, broker = _dispatcher()
    dispatcher.start()
    try:
        deadline = time.monotonic() + 30
        while not broker.reaps:
            assert time.monotonic() < deadline, "never reaped"
            time.sleep(0.02)
        dispatcher.stop_reaping()
        time.sleep(0.2)  # a pass already under way may finish
        seen = len(broker.reaps)
        time.sleep(4 * LEASE)  # several reaping periods
        assert len(broker.reaps) == seen
    finally:
        dispatcher.close()
