"""The warm ``Sandpool`` of each configuration a ``sandpool serve`` runs, and their eviction.

A configuration is keyed like the config cache (its files' identities and the ``SANDPOOL_*``
variables), so an edited file gets a new ``Sandpool``; the old one, and the one of any
configuration no client names any more, is closed once no run has used it for
``idle_timeout`` seconds (its warm cgroups go with it), unless it holds live sandboxes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandpool.api import Sandpool
from sandpool.config.cache import cache_key, load_resolved
from sandpool.config.paths import config_paths
from sandpool.worker.recovery import reconcile_dead_owners

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "WarmSandpools"]

log = logging.getLogger(__name__)
RECONCILE_EVERY_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 600.0


@dataclass
class _Entry:
    sandpool: Sandpool
    runs: int = 0  # in flight
    last_used: float = 0.0
    reconciled: float = float("-inf")


class WarmSandpools:
    """One ``Sandpool`` per configuration, checked out by each run and back in after it.

    Thread safe. ``check_out`` loads a configuration's ``Sandpool`` when new and reconciles
    dead owners' leftovers at most every ``RECONCILE_EVERY_S``; ``evict_idle`` closes those
    unused for ``idle_timeout`` seconds; ``close`` closes them all.
    """

    def __init__(self, idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.idle_timeout, self._clock = idle_timeout, clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def check_out(self, files: tuple[str, ...], environ: Mapping[str, str]) -> Sandpool:
        """The warm ``Sandpool`` of this configuration (loaded, and reconciled, when new)."""
        key = cache_key(config_paths(files, environ), environ)
        entry = self._take(key)
        if entry is None:
            fresh = _Entry(Sandpool(load_resolved(files, environ)), runs=1)
            with self._lock:
                entry = self._entries.setdefault(key, fresh) if key else fresh
                if entry is not fresh:  # another run loaded it meanwhile
                    entry.runs += 1
            if entry is not fresh:
                fresh.sandpool.close()
            else:  # a previous server's live sandboxes, before any gc would take them
                fresh.sandpool.sandboxes.adopt()
                fresh.sandpool.sandboxes.start_warm()  # the pools' warmPool, filled from now
        with self._lock:
            due = self._clock() - entry.reconciled > RECONCILE_EVERY_S
            if due:
                entry.reconciled = self._clock()
        if due:
            reconcile_dead_owners(entry.sandpool.config)
        return entry.sandpool

    def _take(self, key: str | None) -> _Entry | None:
        """The kept entry for ``key``, counted as in use; None if there is none."""
        with self._lock:
            entry = self._entries.get(key) if key else None
            if entry is not None:
                entry.runs += 1
            return entry

    def check_in(self, sandpool: Sandpool) -> None:
        """The run that checked ``sandpool`` out has ended."""
        with self._lock:
            for entry in self._entries.values():
                if entry.sandpool is sandpool:
                    entry.runs -= 1
                    entry.last_used = self._clock()
                    return
        sandpool.close()  # one that was never kept (no cache key)

    def evict_idle(self) -> list[Sandpool]:
        """Close the ``Sandpool``s no run has used for ``idle_timeout`` seconds; those closed."""
        now = self._clock()
        with self._lock:
            idle = [key for key, entry in self._entries.items()
                    if entry.runs == 0 and now - entry.last_used >= self.idle_timeout
                    and not entry.sandpool.holds_sandboxes()]  # fmt: skip
            evicted = [self._entries.pop(key).sandpool for key in idle]
        for sandpool in evicted:
            log.info("closed the idle configuration of %s (unused for %gs)",
                     sandpool.config.state_dir, self.idle_timeout)  # fmt: skip
            sandpool.close()
        return evicted

    def close_sandboxes(self) -> None:
        """Terminate every configuration's sandboxes (the server stops)."""
        with self._lock:
            sandpools = [entry.sandpool for entry in self._entries.values()]
        for sandpool in sandpools:
            sandpool.close_sandboxes()

    def close(self) -> None:
        """Close every ``Sandpool`` (the server stops; its runs have ended)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.sandpool.close()
