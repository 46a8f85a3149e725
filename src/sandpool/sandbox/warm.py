"""Warm pools: sandboxes started ahead, per pool (``warmPool: {size: N}``), claimed by creates.

A warm sandbox is a cold sandbox's container (``sandbox.launch``: fresh writable layer, disk,
cgroup, limits, the pool's default network policy, sandpool's init as PID 1) that nothing but
the init ever ran in: nothing is exec'd in it before it is claimed, so a claimant gets a
pristine filesystem and process table. Its ``sandbox.json`` says ``warm``: a dead owner's
warm sandboxes are never adopted (``SandboxManager.adopt`` removes them) and ``gc`` removes
them like any sandbox.

``WarmPools.claim`` hands out a ready sandbox whose pool, image, limits (cpu, memory, pids,
disk), network policy and workdir are those of the request; env, labels, TTL and idle timeout
are the claimant's, applied at claim time by the manager. A sandbox whose process died is discarded,
never handed out. A refiller thread per pool keeps it at its size, one start at a time (two
cores here); a pool whose starts fail backs off, and a start that hangs ends at the start
timeout like a cold one, holding no other pool meanwhile. ``close`` stops them and removes
the warm sandboxes.

Thread safe: one lock for the ready queues and the counters.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.errors import SandpoolError
from sandpool.images import choose_reference
from sandpool.network.run import run_policy
from sandpool.sandbox.launch import Launched
from sandpool.sandbox.models import SandboxInfo, SandboxRequest
from sandpool.sizes import parse_size

__all__ = ["WarmPools", "WarmStats", "warm_request"]

log = logging.getLogger(__name__)
HEALTH_EVERY_S = 1.0
# After a claim the refill waits this long: on a few cores a start right away competes with
# the claimant's first command (and, in Python, for the GIL).
REFILL_DELAY_S = 0.05
MAX_BACKOFF_S = 30.0


@dataclass
class WarmStats:
    """One pool's warm counters (``SandboxManager.warm_stats``)."""

    pool: str
    size: int
    ready: int = 0
    starting: int = 0
    claims: int = 0
    misses: int = 0
    refills: int = 0
    failures: int = 0
    discarded: int = 0  # found dead (or broken) and replaced, never handed out
    refill_ms_last: float | None = None
    refill_ms_total: float = 0.0
    last_error: str | None = None

    @property
    def refill_ms_mean(self) -> float | None:
        """Mean time to start one warm sandbox."""
        return round(self.refill_ms_total / self.refills, 1) if self.refills else None

    def to_json(self) -> dict[str, Any]:
        """The camelCase view."""
        data = asdict(self)
        return {
            "pool": self.pool, "size": self.size, "ready": self.ready,
            "starting": self.starting, "claims": self.claims, "misses": self.misses,
            "refills": self.refills, "failures": self.failures, "discarded": self.discarded,
            "refillMsLast": data["refill_ms_last"], "refillMsMean": self.refill_ms_mean,
            "lastError": self.last_error,
        }  # fmt: skip


@dataclass
class _Pool:
    """One pool's warm template, ready queue and counters."""

    request: SandboxRequest  # what its warm sandboxes are made with
    reference: str  # the image reference chosen for them
    resolved: ResolvedPool
    stats: WarmStats
    ready: deque[Launched] = field(default_factory=deque)
    retry_at: float = 0.0
    backoff: float = 0.5
    wake: threading.Event = field(default_factory=threading.Event)
    taken_at: float = 0.0  # the last claim (monotonic)


def warm_request(pool: ResolvedPool) -> SandboxRequest:
    """What a pool's warm sandboxes are made with (its ``warmPool``, else its defaults)."""
    warm = pool.warm_pool
    return SandboxRequest(pool.name, warm.image, warm.cpu, warm.memory, warm.pids, warm.disk)


class WarmPools:
    """The warm sandboxes of one manager; see the module docstring.

    ``launch`` starts a sandbox container for a request (raising on failure, cleaning up
    itself); ``discard`` removes one that is not handed out.
    """

    def __init__(self, config: ResolvedConfig, launch: Callable[[SandboxRequest], Launched],
                 discard: Callable[[Launched], None]) -> None:  # fmt: skip
        self.config, self._launch, self._discard = config, launch, discard
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pools: dict[str, _Pool] = {}
        for pool in config.pools.values():
            if pool.warm_pool.size > 0:
                request = warm_request(pool)
                self._pools[pool.name] = _Pool(
                    request, choose_reference(request.image, config.default_image), pool,
                    WarmStats(pool.name, pool.warm_pool.size),
                )  # fmt: skip
        self._discarding: list[threading.Thread] = []  # removals of broken ones in flight
        self._threads = [
            threading.Thread(target=self._refill, args=(w,), name=f"warm-{name}", daemon=True)
            for name, w in self._pools.items()
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    # ---- claims --------------------------------------------------------------------------

    def matches(self, request: SandboxRequest, image_digest: Callable[[str], str]) -> bool:
        """Whether the pool's warm sandboxes are what ``request`` asks for (``image_digest``
        resolves a reference only when the names differ)."""
        warm = self._pools.get(request.pool)
        if warm is None:
            return False
        chosen = choose_reference(request.image, self.config.default_image)
        if chosen != warm.reference:
            with self._lock:
                known = next((w.image_digest for w in warm.ready), None)
            if known is None or image_digest(chosen) != known:
                return False
        return _same_limits(request, warm.request, warm.resolved)

    def claim(self, request: SandboxRequest, image_digest: Callable[[str], str]) -> Launched | None:
        """A ready warm sandbox for ``request``, taken out of the pool (None: a miss)."""
        warm = self._pools.get(request.pool)
        if warm is None:
            return None
        if not self.matches(request, image_digest):
            self._count(warm, "misses")
            return None
        while True:
            with self._lock:
                taken = warm.ready.popleft() if warm.ready else None
                warm.stats.ready = len(warm.ready)
                warm.taken_at = time.monotonic()
            warm.wake.set()
            if taken is None:
                self._count(warm, "misses")
                return None
            if request.workdir not in (None, taken.info.workdir):
                self._put_back(warm, taken)
                self._count(warm, "misses")
                return None
            if taken.alive():
                self._count(warm, "claims")
                return taken
            self._drop(warm, taken, "its process died")

    def retire(self, used: Launched) -> None:
        """Remove a claimed container in the background (a one-shot run's, after it ended);
        ``close`` waits for it."""
        if self._closed.is_set():  # close is waiting for no more of them: remove it now
            self._discard_quietly(used)
            return
        thread = threading.Thread(target=self._discard_quietly, args=(used,), daemon=True)
        with self._lock:
            self._discarding = [t for t in self._discarding if t.is_alive()] + [thread]
        thread.start()

    def _put_back(self, warm: _Pool, taken: Launched) -> None:
        with self._lock:
            warm.ready.appendleft(taken)
            warm.stats.ready = len(warm.ready)

    def _count(self, warm: _Pool, counter: str) -> None:
        with self._lock:
            setattr(warm.stats, counter, getattr(warm.stats, counter) + 1)

    def _drop(self, warm: _Pool, bad: Launched, why: str) -> None:
        log.warning("warm sandbox %s of pool %s discarded: %s", bad.info.id, warm.stats.pool, why)
        self._count(warm, "discarded")
        self.retire(bad)

    def _discard_quietly(self, launched: Launched) -> None:
        try:
            self._discard(launched)
        except Exception:  # a thread of its own: log it; gc takes what is left
            log.exception("removing warm sandbox %s failed", launched.info.id)

    # ---- views ----------------------------------------------------------------------------

    def stats(self) -> list[WarmStats]:
        """Every warm pool's counters (copies)."""
        with self._lock:
            return [WarmStats(**asdict(w.stats)) for w in self._pools.values()]

    def infos(self) -> list[SandboxInfo]:
        """The ready warm sandboxes (state ``warm``)."""
        with self._lock:
            return [SandboxInfo.from_record(r.info.to_record())
                    for w in self._pools.values() for r in w.ready]  # fmt: skip

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every warm pool is full; whether it is."""
        deadline = time.monotonic() + timeout
        while not self._full():
            if time.monotonic() >= deadline or self._closed.is_set():
                return False
            time.sleep(0.02)
        return True

    def _full(self) -> bool:
        with self._lock:
            return all(len(w.ready) >= w.stats.size for w in self._pools.values())

    # ---- refilling ---------------------------------------------------------------------------

    def _refill(self, warm: _Pool) -> None:
        """One pool's refiller (a start that hangs there holds no other pool)."""
        checked = 0.0
        while not self._closed.is_set():
            if time.monotonic() - checked >= HEALTH_EVERY_S:
                self._check_health(warm)
                checked = time.monotonic()
            with self._lock:
                short = len(warm.ready) < warm.stats.size
            if not short or time.monotonic() < warm.retry_at:
                warm.wake.wait(0.25)
                warm.wake.clear()
                continue
            if (quiet := warm.taken_at + REFILL_DELAY_S - time.monotonic()) > 0:
                self._closed.wait(quiet)  # let the claimant's first command go first
                continue
            self._start_one(warm)

    def _start_one(self, warm: _Pool) -> None:
        with self._lock:
            warm.stats.starting = 1
        began = time.monotonic()
        try:
            launched = self._launch(warm.request)
        except Exception as error:  # any failure: counted, backed off, never the thread's end
            self._failed(warm, error)
            return
        finally:
            with self._lock:
                warm.stats.starting = 0
        elapsed = (time.monotonic() - began) * 1000
        with self._lock:
            if not self._closed.is_set():
                warm.ready.append(launched)
                warm.backoff, s = 0.5, warm.stats
                s.ready, s.refills = len(warm.ready), s.refills + 1
                s.refill_ms_last, s.refill_ms_total = round(elapsed, 1), s.refill_ms_total + elapsed
                return
        self._discard_quietly(launched)  # closed meanwhile

    def _failed(self, warm: _Pool, error: BaseException) -> None:
        log.warning("warm sandbox of pool %s could not start: %s", warm.stats.pool, error)
        with self._lock:
            warm.stats.failures += 1
            warm.stats.last_error = str(error)
            warm.retry_at = time.monotonic() + warm.backoff
            warm.backoff = min(MAX_BACKOFF_S, warm.backoff * 2)

    def _check_health(self, warm: _Pool) -> None:
        """Discard ready sandboxes whose process died (they are then refilled)."""
        with self._lock:
            dead = [r for r in warm.ready if not r.alive()]
            for bad in dead:
                warm.ready.remove(bad)
            warm.stats.ready = len(warm.ready)
        for bad in dead:
            self._drop(warm, bad, "its process died")

    def close(self) -> None:
        """Stop refilling and remove every warm sandbox (eight at a time), waiting for the
        removals of broken ones in flight too."""
        self._closed.set()
        for warm in self._pools.values():
            warm.wake.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            ready = [r for w in self._pools.values() for r in w.ready]
            for w in self._pools.values():
                w.ready.clear()
                w.stats.ready = 0
        with ThreadPoolExecutor(8) as executor:
            list(executor.map(self._discard_quietly, ready))
        with self._lock:
            discarding = list(self._discarding)
        for thread in discarding:
            thread.join()


def _same_limits(request: SandboxRequest, warm: SandboxRequest, pool: ResolvedPool) -> bool:
    """Whether ``request`` gets the warm sandboxes' cpu, memory, pids, disk and network
    policy (theirs is the pool's ``containerDefaults.network``/``allow``)."""
    with contextlib.suppress(SandpoolError, ValueError):
        return (
            (request.cpu or pool.cpu) == (warm.cpu or pool.cpu)
            and (request.pids or pool.pids) == (warm.pids or pool.pids)
            and _size(request.memory or pool.memory) == _size(warm.memory or pool.memory)
            and _size(request.disk or pool.disk) == _size(warm.disk or pool.disk)
            and run_policy(request, pool) == run_policy(warm, pool)
        )  # fmt: skip
    return False  # a bad value: the cold path names it


def _size(text: str) -> int:
    return parse_size(text)
