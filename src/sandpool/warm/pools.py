"""The warm ``Sandpool`` of each configuration a ``sandpool serve`` runs, and their eviction.

A configuration is keyed like the config cache (its files' identities and the ``SANDPOOL_*``
variables a configuration reads: ``SANDPOOL_CONFIG``, ``SANDPOOL_WORKER_*``,
``SANDPOOL_GATEWAY_*``; not the socket's, the URL's or a key's), so an edited file gets a new
``Sandpool``; the old one, and the one of any configuration no client names any more, is
closed once no run has used it for ``idle_timeout`` seconds (its warm cgroups go with it),
unless it holds live sandboxes. ``sandpool server`` ``share``s its own ``Sandpool``: runs and
sandboxes of its configuration use the one its HTTP API uses, which its owner closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandpool.api import Sandpool
from sandpool.config.cache import cache_key, load_resolved
from sandpool.config.paths import CONFIG_ENV_VAR, config_paths
from sandpool.worker.recovery import reconcile_dead_owners

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "WarmSandpools", "config_environ"]

log = logging.getLogger(__name__)
RECONCILE_EVERY_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 600.0
CONFIG_PREFIXES = ("SANDPOOL_WORKER_", "SANDPOOL_GATEWAY_")


def config_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a configuration is read from (``config.sources``), and no others."""
    return {k: v for k, v in environ.items()
            if k == CONFIG_ENV_VAR or k.startswith(CONFIG_PREFIXES)}  # fmt: skip


def _key(files: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The configuration's key: the files read (named by ``-c`` or ``$SANDPOOL_CONFIG``,
    alike) and the variables that change it."""
    overrides = {k: v for k, v in environ.items() if k != CONFIG_ENV_VAR}
    return cache_key(config_paths(files, environ), overrides)


@dataclass
class _Entry:
    sandpool: Sandpool
    runs: int = 0  # in flight
    last_used: float = 0.0
    reconciled: float = float("-inf")
    shared: bool = False  # its owner (``sandpool server``) closes it, never idle


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

    def share(self, files: tuple[str, ...], environ: Mapping[str, str],
              sandpool: Sandpool) -> None:  # fmt: skip
        """Runs of this configuration use ``sandpool`` (the caller's; it closes it), whose
        dead predecessor's sandboxes are adopted now and whose warm pools start filling."""
        key = _key(files, config_environ(environ))
        sandpool.sandboxes.adopt()
        sandpool.sandboxes.start_warm()
        if key:
            with self._lock:
                self._entries[key] = _Entry(sandpool, last_used=self._clock(), shared=True)

    def check_out(self, files: tuple[str, ...], environ: Mapping[str, str]) -> Sandpool:
        """The warm ``Sandpool`` of this configuration (loaded, and reconciled, when new)."""
        environ = config_environ(environ)
        key = _key(files, environ)
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
                log.info("loaded a configuration (stateDir %s)", fresh.sandpool.config.state_dir)
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
                    if entry.runs == 0 and not entry.shared
                    and now - entry.last_used >= self.idle_timeout
                    and not entry.sandpool.holds_sandboxes()]  # fmt: skip
            evicted = [self._entries.pop(key).sandpool for key in idle]
        for sandpool in evicted:
            log.info("closed the idle configuration of %s (unused for %gs)",
                     sandpool.config.state_dir, self.idle_timeout)  # fmt: skip
            sandpool.close()
        return evicted

    def close_sandboxes(self, *, terminate: bool = True) -> None:
        """Terminate every configuration's sandboxes, or leave them running for the next
        server to adopt (the server stops)."""
        with self._lock:
            sandpools = [entry.sandpool for entry in self._entries.values()]
        for sandpool in sandpools:
            sandpool.close_sandboxes(terminate=terminate)

    def close(self, *, keep_sandboxes: bool = False) -> None:
        """Close every ``Sandpool`` but a shared one (the server stops; its runs have ended)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if not entry.shared:
                entry.sandpool.close(keep_sandboxes=keep_sandboxes)
