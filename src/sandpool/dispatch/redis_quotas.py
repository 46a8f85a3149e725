"""Tenant quotas shared by every gateway (``sandpool server --redis``): concurrent runs and
sandboxes, their summed cpu and memory, and creates per second, admitted by one Lua script in
the dispatch's Redis (``dispatch.quota_scripts``), so N gateways admitting at once never
overshoot. The embedded server keeps its in-process ``QuotaLedger``; both are
``TenantQuotas``.

Each admission is a lease with an id, an owner (the gateway that admitted it) and, once its
sandbox exists, the sandbox it is bound to. A lease is given back exactly once (the script
deletes it; a second release finds nothing) by whichever comes first:

- the gateway that holds it: a run's end, a terminate, a failed placement, a sandbox it sees
  ended (TTL, OOM, ``worker_lost``);
- the reconcile every gateway runs every ``RECONCILE_EVERY_S``: a bound lease whose sandbox
  the dispatch records ended (or forgot), and an unbound one (a run, a create not yet placed)
  whose owner's heartbeat (``{p}gw:{id}``, renewed every reconcile, lease = the dispatch's
  worker lease) ran out: the gateway died after admitting.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from sandpool.dispatch import quota_scripts
from sandpool.dispatch.broker import Broker
from sandpool.service.quotas import Quota, Usage, check_capacity, refusal, refuse_impossible

__all__ = ["RedisLease", "RedisQuotas"]

log = logging.getLogger("sandpool.quotas")
RECONCILE_EVERY_S = 1.0


@dataclass
class RedisLease:
    """One admitted run or sandbox, counted in Redis."""

    id: str
    tenant_id: str
    cpu: float
    memory: int
    _quotas: RedisQuotas = field(repr=False)

    def release(self) -> None:
        """Give the share back (once, whoever calls)."""
        self._quotas.release(self.id)

    def bind(self, holder: str) -> None:
        """Tie the lease to sandbox ``holder``: given back when the dispatch records it ended."""
        self._quotas.run_script("BIND", self.id, holder)


class RedisQuotas:
    """``TenantQuotas`` in the dispatch's Redis (see the module docstring); thread safe."""

    def __init__(self, broker: Broker, gateway_id: str | None = None) -> None:
        self.broker = broker
        self.gateway_id = gateway_id or f"g-{uuid.uuid4().hex[:12]}"
        self._scripts = {name: broker.client.register_script(getattr(quota_scripts, name))
                         for name in quota_scripts.__all__}  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_script(self, name: str, *args: str | int) -> Any:
        script, prefix = self._scripts[name], self.broker.keys.prefix
        return self.broker._call(lambda: script(keys=[], args=[prefix, *args]))

    def _lease_ms(self) -> int:
        return max(1, int(self.broker.settings.lease * 1000))

    def admit(self, tenant_id: str, quota: Quota, cpu: float, memory: int) -> RedisLease:
        """Count one more run or sandbox, or raise QuotaExceeded / InvalidRequest."""
        refuse_impossible(quota, cpu, memory)
        lease_id = uuid.uuid4().hex
        answer = self.run_script("ADMIT", tenant_id, lease_id, self.gateway_id, quota.concurrent,
                                 _milli(quota.cpu), quota.memory, repr(quota.creates_per_second),
                                 _milli(cpu), memory, self._lease_ms())  # fmt: skip
        if answer[0] == "full":
            held = Usage(int(answer[1]), int(answer[2]) / 1000, int(answer[3]))
            check_capacity(held, quota, cpu, memory)
        if answer[0] == "rate":
            wait = int(answer[1]) / 1000
            rate = quota.creates_per_second
            raise refusal("rate", f"more than {rate:g} creates per second",
                          f"retry in {wait:.2f} s", wait)  # fmt: skip
        return RedisLease(lease_id, tenant_id, cpu, memory, self)

    def restore(self, tenant_id: str, cpu: float, memory: int, holder: str = "") -> RedisLease:
        """Count sandbox ``holder``, already running, unless a lease counts it already."""
        lease_id = str(self.run_script("RESTORE", tenant_id, uuid.uuid4().hex, self.gateway_id,
                                       _milli(cpu), memory, holder))  # fmt: skip
        return RedisLease(lease_id, tenant_id, cpu, memory, self)

    def release(self, lease_id: str) -> bool:
        """Give lease ``lease_id`` back: whether this call did."""
        return bool(self.run_script("RELEASE", lease_id))

    def usage(self, tenant_id: str) -> Usage:
        """What the tenant holds now, across every gateway."""
        key = f"{self.broker.keys.prefix}qt:{tenant_id}"
        row = cast(list[str | None], self.broker._call(
            lambda: self.broker.client.hmget(key, ["count", "cpu", "memory"])))  # fmt: skip
        count, milli, memory = (int(x or 0) for x in row)
        return Usage(count, milli / 1000, memory)

    # ---- upkeep -----------------------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """Renew this gateway's heartbeat; give back the leases nobody will (the ids)."""
        key = f"{self.broker.keys.prefix}gw:{self.gateway_id}"
        self.broker._call(lambda: self.broker.client.set(key, "1", px=self._lease_ms()))
        return [str(x) for x in self.run_script("RECONCILE")]

    def start(self) -> None:
        """Reconcile now and then every ``RECONCILE_EVERY_S`` in a thread, until ``close``."""
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="quotas", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        every = min(RECONCILE_EVERY_S, self.broker.settings.lease / 4)
        while not self._stop.wait(every):
            try:
                released = self.reconcile()
            except Exception:  # Redis away for a moment: the next pass tries again
                log.exception("reconciling the tenant quotas failed")
                continue
            if released:
                log.info("gave back %d quota leases nobody held", len(released))

    def close(self) -> None:
        """Stop the reconcile thread (this gateway's unbound leases lapse with its heartbeat)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def _milli(cores: float) -> int:
    return round(cores * 1000)
