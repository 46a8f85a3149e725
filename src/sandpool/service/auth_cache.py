"""A short-lived memory of keys already verified against the store, so that a busy client's
requests skip the key lookup (two queries, and a thread hop to run them off the event loop).

Entries are keyed by the SHA-256 of the whole key (the key itself is never kept) and live at
most ``ttl`` seconds, never past the key's own expiry. The server that revokes a key or
deletes a tenant forgets the cached keys at once (``forget``); a revocation made elsewhere
(another server on the same database) takes effect within ``ttl``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandpool.service.apikeys import Principal

__all__ = ["CACHE_TTL_S", "PrincipalCache"]

CACHE_TTL_S = 2.0  # the bound on a revocation made on another server
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    until: float  # monotonic
    expires_at: float | None  # the key's own expiry (wall clock)


class PrincipalCache:
    """Verified keys and whom they stand for; thread-safe."""

    def __init__(self, ttl: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.ttl, self._clock, self._wall = ttl, clock, wall
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Principal | None:
        """The principal of ``token`` if it was verified less than ``ttl`` ago and has not
        expired since; else None (look it up)."""
        digest = self._digest(token)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if self._clock() >= entry.until or (
                entry.expires_at is not None and self._wall() >= entry.expires_at
            ):
                del self._entries[digest]
                return None
            return entry.principal

    def put(self, token: str, principal: Principal, expires_at: float | None) -> None:
        """Remember that ``token`` was just verified as ``principal``."""
        if self.ttl <= 0:
            return
        entry = _Entry(principal, self._clock() + self.ttl, expires_at)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # many distinct keys at once: start over
            self._entries[self._digest(token)] = entry

    def forget(self, key_id: str | None = None) -> None:
        """Forget key ``key_id`` (revoked here), or every key (a tenant deleted here)."""
        with self._lock:
            if key_id is None:
                self._entries.clear()
                return
            stale = [d for d, e in self._entries.items() if e.principal.key_id == key_id]
            for digest in stale:
                del self._entries[digest]
