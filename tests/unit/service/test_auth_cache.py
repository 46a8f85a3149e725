"""The cache of verified keys: what it answers from memory, and for how long at most (a key
revoked on another server is refused within ``CACHE_TTL_S``; on this one at once)."""

from __future__ import annotations

from pathlib import Path

from sandpool.service.apikeys import Principal
from sandpool.service.auth import Authenticator
from sandpool.service.auth_cache import CACHE_TTL_S, PrincipalCache
from sandpool.store import Store, default_url
from tests.unit.service.conftest import ADMIN, Api
from tests.unit.service.test_api import assert_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_at_most_its_ttl_and_never_past_the_keys_expiry() -> None:
    mono, wall = Clock(), Clock()
    cache = PrincipalCache(ttl=2.0, clock=mono, wall=wall)
    admin = Principal("k1", None)
    cache.put("sp_token", admin, expires_at=None)
    assert cache.get("sp_token") == admin and cache.get("sp_other") is None
    mono.now += 1.99
    assert cache.get("sp_token") == admin
    mono.now += 0.02
    assert cache.get("sp_token") is None  # past the ttl: looked up again
    cache.put("sp_token", admin, expires_at=wall.now + 0.5)
    wall.now += 0.5
    assert cache.get("sp_token") is None  # the key expired before the ttl ended


def test_forget_one_key_or_all_and_the_key_itself_is_never_kept() -> None:
    cache = PrincipalCache()
    cache.put("sp_a", Principal("a", None), None)
    cache.put("sp_b", Principal("b", None), None)
    cache.forget("a")
    assert cache.get("sp_a") is None and cache.get("sp_b") is not None
    assert "sp_b" not in repr(cache._entries)
    cache.forget()
    assert cache.get("sp_b") is None
    assert PrincipalCache(ttl=0).get("sp_b") is None


def test_a_verified_key_is_answered_without_the_store(tmp_path: Path) -> None:
    store = Store.open(default_url(tmp_path))
    auth = Authenticator(store)
    text = auth.ensure_admin_key()
    assert text is not None and auth.cached(f"Bearer {text}") is None  # not verified yet
    principal = auth.principal(f"Bearer {text}")
    store.close()  # the store is gone: only the cache can answer now
    assert auth.cached(f"Bearer {text}") == principal
    for header in (None, "", "Basic x", "Bearer "):
        assert auth.cached(header) is None


def test_revocation_behind_this_servers_back_takes_effect_within_the_ttl(api: Api) -> None:
    mono = Clock()
    api.context.auth.cache._clock = mono
    acme = api.tenant("acme")
    key_id = api.http.get("/v1/me", headers=acme).json()["keyId"]
    api.context.store.keys.revoke(key_id)  # as another server on the same database does
    mono.now += CACHE_TTL_S - 0.01
    assert api.http.get("/v1/me", headers=acme).status_code == 200  # still cached
    mono.now += 0.01
    body = assert_error(api.http.get("/v1/me", headers=acme), 401, "unauthenticated")
    assert "revoked or expired" in body["message"]


def test_revoking_or_deleting_here_is_immediate(api: Api) -> None:
    acme, globex = api.tenant("acme"), api.tenant("globex")
    for headers in (acme, globex):
        assert api.http.get("/v1/me", headers=headers).status_code == 200  # now cached
    key_id = api.http.get("/v1/me", headers=acme).json()["keyId"]
    assert api.http.delete(f"/v1/keys/{key_id}", headers=ADMIN).status_code == 200
    assert_error(api.http.get("/v1/me", headers=acme), 401, "unauthenticated")
    assert api.http.delete("/v1/tenants/globex", headers=ADMIN).status_code == 200
    assert_error(api.http.get("/v1/me", headers=globex), 401, "unauthenticated")
