"""Per-tenant quotas, admitted atomically: concurrent runs and sandboxes, their summed cpu and
memory, and creates per second (a token bucket).

``TenantQuotas`` is what the routes use; two implement it. ``QuotaLedger`` (here) is the
embedded server's: one lock orders every admission of the process, so N concurrent creates
never overshoot; it lives in the server's memory, as what it counts (runs, live sandboxes)
does, and a restarted server counts again what it re-adopts (``restore``). A gateway
(``--redis``) uses ``dispatch.redis_quotas.RedisQuotas``: the same admission as one Lua
script in the dispatch's Redis, so any number of gateways share one count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sandpool.errors import InvalidRequest, QuotaExceeded
from sandpool.sizes import format_size

__all__ = [
    "Lease",
    "Quota",
    "QuotaLease",
    "QuotaLedger",
    "TenantQuotas",
    "Usage",
    "check_capacity",
    "refusal",
    "refuse_impossible",
]  # fmt: skip


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


class QuotaLease(Protocol):
    """One admitted run or sandbox's share of its tenant's quota."""

    tenant_id: str
    cpu: float
    memory: int

    def release(self) -> None:
        """Give the share back (idempotent: the second call does nothing)."""

    def bind(self, holder: str) -> None:
        """The share now belongs to sandbox ``holder`` (it is given back when that sandbox
        ends, even if the process that admitted it is gone)."""


class TenantQuotas(Protocol):
    """Per-tenant admission, atomic across everyone sharing the same count."""

    def admit(self, tenant_id: str, quota: Quota, cpu: float, memory: int) -> QuotaLease:
        """Count one more run or sandbox, or raise QuotaExceeded / InvalidRequest."""

    def restore(self, tenant_id: str, cpu: float, memory: int, holder: str = "") -> QuotaLease:
        """Count a sandbox that already runs (``holder``), whatever the quota."""

    def usage(self, tenant_id: str) -> Usage:
        """What the tenant holds now."""


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

    def bind(self, holder: str) -> None:
        """Nothing to do here: the ledger lives and dies with the process holding the sandbox."""


class QuotaLedger:
    """Every tenant's usage; thread-safe, one lock for all admissions."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}

    def admit(self, tenant_id: str, quota: Quota, cpu: float, memory: int) -> Lease:
        """Count one more run or sandbox of ``cpu`` cores and ``memory`` bytes, or raise
        QuotaExceeded (with ``retry_after``) / InvalidRequest (it can never fit)."""
        refuse_impossible(quota, cpu, memory)
        with self._lock:
            usage = self._usage.setdefault(tenant_id, Usage())
            check_capacity(usage, quota, cpu, memory)
            self._take_token(usage, quota)
            usage.count, usage.cpu, usage.memory = (usage.count + 1, usage.cpu + cpu,
                                                    usage.memory + memory)  # fmt: skip
        return Lease(tenant_id, cpu, memory, self)

    def restore(self, tenant_id: str, cpu: float, memory: int, holder: str = "") -> Lease:
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
            raise refusal(
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


def refusal(reason: str, message: str, hint: str, retry_after: float) -> QuotaExceeded:
    """The 429 for ``reason`` (``concurrent``, ``cpu``, ``memory``, ``rate``)."""
    error = QuotaExceeded(message, hint=hint, retry_after=retry_after)
    error.reason = reason
    return error


def check_capacity(usage: Usage, quota: Quota, cpu: float, memory: int) -> None:
    """Raise the refusal if one more of ``cpu``/``memory`` does not fit beside ``usage``."""
    held = (f"the tenant holds {usage.count} of {quota.concurrent}, {usage.cpu:g} of "
            f"{quota.cpu:g} cores, {format_size(usage.memory)} of "
            f"{format_size(quota.memory)}")  # fmt: skip
    hint = "retry when one of its runs or sandboxes has ended"
    if usage.count + 1 > quota.concurrent:
        raise refusal("concurrent", f"concurrent quota reached ({held})", hint, 1.0)
    if usage.cpu + cpu > quota.cpu + 1e-9:
        raise refusal("cpu", f"cpu quota reached ({held})", hint, 1.0)
    if usage.memory + memory > quota.memory:
        raise refusal("memory", f"memory quota reached ({held})", hint, 1.0)


def refuse_impossible(quota: Quota, cpu: float, memory: int) -> None:
    """Refuse what can never fit the quota, whatever the tenant holds."""
    if quota.concurrent < 1:
        raise refusal(
            "concurrent", "the tenant's concurrent quota is 0", "an admin can raise it", 60.0
        )
    if cpu > quota.cpu + 1e-9:
        raise InvalidRequest(f"limits.cpu: {cpu:g} cores is more than the tenant's quota "
                             f"of {quota.cpu:g}", field="limits.cpu")  # fmt: skip
    if memory > quota.memory:
        raise InvalidRequest(f"limits.memory: {format_size(memory)} is more than the "
                             f"tenant's quota of {format_size(quota.memory)}",
                             field="limits.memory")  # fmt: skip
