"""API keys on the wire: ``sp_<id>_<secret>``, a public id for lookup and 32 random bytes
whose SHA-256 is all the store keeps; and the principal a key stands for."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sandpool.store import TenantRecord

__all__ = ["KEY_PATTERN", "NewKey", "Principal", "hash_secret", "new_key", "split_key"]

KEY_PATTERN = re.compile(r"sp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``text`` is shown once, ``secret_sha256`` is stored."""

    id: str
    text: str
    secret_sha256: str


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the admin (no tenant) or one tenant (as read with the key)."""

    key_id: str
    tenant: TenantRecord | None

    @property
    def tenant_id(self) -> str | None:
        """The tenant's id; None for the admin."""
        return None if self.tenant is None else self.tenant.id

    @property
    def tenant_name(self) -> str | None:
        """The tenant's name; None for the admin."""
        return None if self.tenant is None else self.tenant.name

    @property
    def is_admin(self) -> bool:
        """Whether this is an admin key (tenants and keys, no runs of its own)."""
        return self.tenant_id is None


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a key's secret part (a 256-bit random value needs no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> NewKey:
    """A fresh random key."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return NewKey(key_id, f"sp_{key_id}_{secret}", hash_secret(secret))


def split_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    match = KEY_PATTERN.fullmatch(text)
    return None if match is None else (match[1], match[2])


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_sha256)
