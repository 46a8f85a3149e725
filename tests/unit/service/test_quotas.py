"""The quota ledger: each quota refuses the one too many, with Retry-After; admissions from
many threads at once never overshoot; a release gives the share back once."""

from __future__ import annotations

import threading

import pytest

from sandpool.errors import InvalidRequest, QuotaExceeded
from sandpool.service.quotas import Quota, QuotaLedger

GI = 1 << 30


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quota(concurrent: int = 10, cpu: float = 10.0, memory: int = 10 * GI,
          rate: float = 1000.0) -> Quota:  # fmt: skip
    return Quota(concurrent, cpu, memory, rate)


@pytest.mark.parametrize(("q", "cpu", "memory", "reason"), [
    (quota(concurrent=2), 1.0, GI, "concurrent"),
    (quota(cpu=2.5), 1.0, GI, "cpu"),
    (quota(memory=2 * GI + 1), 1.0, GI, "memory"),
])  # fmt: skip
def test_the_one_too_many_is_refused(q: Quota, cpu: float, memory: int, reason: str) -> None:
    ledger = QuotaLedger()
    leases = [ledger.admit("t", q, cpu, memory) for _ in range(2)]
    with pytest.raises(QuotaExceeded) as refused:
        ledger.admit("t", q, cpu, memory)
    assert refused.value.reason == reason
    assert refused.value.retry_after and refused.value.retry_after > 0
    assert ledger.admit("other", q, cpu, memory)  # another tenant is not affected
    leases[0].release()
    leases[0].release()  # twice: given back once
    assert ledger.usage("t").count == 1
    ledger.admit("t", q, cpu, memory)
    with pytest.raises(QuotaExceeded):
        ledger.admit("t", q, cpu, memory)


def test_the_rate_refuses_with_the_time_to_wait() -> None:
    clock = Clock()
    ledger = QuotaLedger(clock)
    q = quota(rate=2.0)
    ledger.admit("t", q, 0.1, 1).release()
    ledger.admit("t", q, 0.1, 1).release()
    with pytest.raises(QuotaExceeded) as refused:
        ledger.admit("t", q, 0.1, 1)
    assert refused.value.reason == "rate"
    assert refused.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    ledger.admit("t", q, 0.1, 1)


def test_a_request_that_can_never_fit_is_a_400_naming_the_limit() -> None:
    with pytest.raises(InvalidRequest) as refused:
        QuotaLedger().admit("t", quota(cpu=2.0), 3.0, GI)
    assert refused.value.field == "limits.cpu"
    with pytest.raises(InvalidRequest, match=r"limits\.memory"):
        QuotaLedger().admit("t", quota(memory=GI), 1.0, 2 * GI)


def test_concurrent_admissions_never_overshoot() -> None:
    ledger, q = QuotaLedger(), quota(concurrent=7)
    admitted, refused = [], []
    start = threading.Barrier(64)

    def admit() -> None:
        start.wait()
        try:
            admitted.append(ledger.admit("t", q, 0.1, 1))
        except QuotaExceeded:
            refused.append(1)

    threads = [threading.Thread(target=admit) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (7, 57)
    assert ledger.usage("t").count == 7


def test_restore_counts_whatever_the_quota() -> None:
    ledger = QuotaLedger()
    ledger.restore("t", 4.0, GI)
    with pytest.raises(QuotaExceeded):
        ledger.admit("t", quota(cpu=4.5), 1.0, 1)
