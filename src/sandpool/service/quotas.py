"""Per-tenant quotas, admitted atomically: concurrent runs and sandboxes, their summed cpu and
memory, and creates per second (a token bucket).

One lock orders every admission of the process, so N concurrent creates never overshoot. The
ledger lives in the server's memory: what it counts (runs, live sandboxes) lives there too,
and a restarted server counts again what it re-adopts (``restore``). Several servers over
one database (the scale-out issue) need the count in the database instead, under a row lock
of the tenant.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandpool.errors import InvalidRequest, QuotaExceeded
from sandpool.sizes import format_size

__all__ = ["Lease", "Quota", "QuotaLedger", "Usage"]


@dataclass(frozen=True)
class Quota:
    """What one tenant may hold at once and how fast it may create."""

    concurrent: int
    cpu: float
    memory: int
    creates_per_second: float


@dataclass
class Usage:
    """What one tenant holds now, and its rate bucket."""

    count: int = 0
    cpu: float = 0.0
    memory: int = 0
    tokens: float = math.inf  # filled to the bucket's size on first use
    stamp: float = 0.0


@dataclass
class Lease:
    """One admitted run or sandbox; ``release`` (idempotent) gives its share back."""

    tenant_id: str
    cpu: float
    memory: int
    _ledger: QuotaLedger = field(repr=False)
    _released: bool = False

    def release(self) -> None:
        """Give the share back (once)."""
        self._ledger._release(self)


class QuotaLedger:
    """Every tenant's usage; thread-safe, one lock for all admissions."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}

    def admit(self, tenant_id: str, quota: Quota, cpu: float, memory: int) -> Lease:
        """Count one more run or sandbox of ``cpu`` cores and ``memory`` bytes, or raise
        QuotaExceeded (with ``retry_after``) / InvalidRequest (it can never fit)."""
        _refuse_impossible(quota, cpu, memory)
        with self._lock:
            usage = self._usage.setdefault(tenant_id, Usage())
            _check_capacity(usage, quota, cpu, memory)
            self._take_token(usage, quota)
            usage.count, usage.cpu, usage.memory = (usage.count + 1, usage.cpu + cpu,
                                                    usage.memory + memory)  # fmt: skip
        return Lease(tenant_id, cpu, memory, self)

    def restore(self, tenant_id: str, cpu: float, memory: int) -> Lease:
        """Count a sandbox that already runs (re-adopted at start), whatever the quota."""
        with self._lock:
            usage = self._usage.setdefault(tenant_id, Usage())
            usage.count, usage.cpu, usage.memory = (usage.count + 1, usage.cpu + cpu,
                                                    usage.memory + memory)  # fmt: skip
        return Lease(tenant_id, cpu, memory, self)

    def usage(self, tenant_id: str) -> Usage:
        """A copy of what the tenant holds now."""
        with self._lock:
            found = self._usage.get(tenant_id, Usage())
            return Usage(found.count, found.cpu, found.memory, found.tokens, found.stamp)

    def _take_token(self, usage: Usage, quota: Quota) -> None:
        now, rate = self._clock(), quota.creates_per_second
        burst = max(1.0, rate)
        usage.tokens = min(burst, usage.tokens + (now - usage.stamp) * rate)
        usage.stamp = now
        if usage.tokens < 1.0:
            wait = (1.0 - usage.tokens) / rate
            raise _refusal(
                "rate", f"more than {rate:g} creates per second", f"retry in {wait:.2f} s", wait
            )
        usage.tokens -= 1.0

    def _release(self, lease: Lease) -> None:
        with self._lock:
            if lease._released:
                return
            lease._released = True
            usage = self._usage[lease.tenant_id]
            usage.count -= 1
            usage.cpu = max(0.0, usage.cpu - lease.cpu)
            usage.memory -= lease.memory


def _refusal(reason: str, message: str, hint: str, retry_after: float) -> QuotaExceeded:
    error = QuotaExceeded(message, hint=hint, retry_after=retry_after)
    error.reason = reason
    return error


def _check_capacity(usage: Usage, quota: Quota, cpu: float, memory: int) -> None:
    held = (f"the tenant holds {usage.count} of {quota.concurrent}, {usage.cpu:g} of "
            f"{quota.cpu:g} cores, {format_size(usage.memory)} of "
            f"{format_size(quota.memory)}")  # fmt: skip
    hint = "retry when one of its runs or sandboxes has ended"
    if usage.count + 1 > quota.concurrent:
        raise _refusal("concurrent", f"concurrent quota reached ({held})", hint, 1.0)
    if usage.cpu + cpu > quota.cpu + 1e-9:
        raise _refusal("cpu", f"cpu quota reached ({held})", hint, 1.0)
    if usage.memory + memory > quota.memory:
        raise _refusal("memory", f"memory quota reached ({held})", hint, 1.0)


def _refuse_impossible(quota: Quota, cpu: float, memory: int) -> None:
    if quota.concurrent < 1:
        raise _refusal(
            "concurrent", "the tenant's concurrent quota is 0", "an admin can raise it", 60.0
        )
    if cpu > quota.cpu + 1e-9:
        raise InvalidRequest(f"limits.cpu: {cpu:g} cores is more than the tenant's quota "
                             f"of {quota.cpu:g}", field="limits.cpu")  # fmt: skip
    if memory > quota.memory:
        raise InvalidRequest(f"limits.memory: {format_size(memory)} is more than the "
                             f"tenant's quota of {format_size(quota.memory)}",
                             field="limits.memory")  # fmt: skip
