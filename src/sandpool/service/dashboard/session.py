"""Signed-in browsers: the login page trades an API key for a random session token (the
cookie, HttpOnly, SameSite=Strict); each request re-checks the key behind it, so a revoked
key signs its sessions out. Kept in memory: a restarted server asks to sign in again."""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["COOKIE", "SESSION_MAX_AGE_S", "SessionBook"]

COOKIE = "sandpool_session"
SESSION_MAX_AGE_S = 12 * 3600


class SessionBook:
    """Session token -> (API key, expiry); thread-safe."""

    def __init__(self, max_age: float = SESSION_MAX_AGE_S) -> None:
        self.max_age = max_age
        self._sessions: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def open(self, key: str) -> str:
        """A new session for ``key``; its token."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = (key, time.time() + self.max_age)
        return token

    def key_of(self, token: str | None) -> str | None:
        """The API key of a live session; None for no, unknown or expired sessions."""
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is not None and found[1] < time.time():
                del self._sessions[token]
                found = None
        return None if found is None else found[0]

    def close(self, token: str | None) -> None:
        """Sign out."""
        with self._lock:
            self._sessions.pop(token or "", None)
