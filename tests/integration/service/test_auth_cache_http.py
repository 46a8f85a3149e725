"""The server remembers verified keys for ``CACHE_TTL_S`` (``service.auth_cache``): over real
HTTP to a real server, a key revoked through it is refused at once, and a key revoked
behind its back (in its database, as another server on the same database does) is refused
within the bound."""

from __future__ import annotations

import time

import pytest

from sandpool.errors import Unauthenticated
from sandpool.service.auth_cache import CACHE_TTL_S
from sandpool.store import Store, default_url
from tests.integration.conftest import Sandbox
from tests.integration.service.conftest import ServerProcess

pytestmark = [pytest.mark.root]


def _tenant_key(server: ServerProcess, name: str) -> str:
    with server.client(server.admin_key) as admin:
        admin.create_tenant(name)
        return admin.create_key(name).key


def test_a_key_revoked_through_the_server_is_refused_from_the_next_request_on(
    server: ServerProcess,
) -> None:
    key = _tenant_key(server, "cache-here")
    with server.client(key) as client, server.client(server.admin_key) as admin:
        key_id = client.me().key_id  # verified: now cached
        assert client.me().key_id == key_id
        admin.revoke_key(key_id)
        with pytest.raises(Unauthenticated, match="revoked or expired"):
            client.me()


def test_a_key_revoked_in_the_database_is_refused_within_the_cache_bound(
    server: ServerProcess, service_box: Sandbox
) -> None:
    key = _tenant_key(server, "cache-elsewhere")
    store = Store.open(default_url(service_box.state_dir))  # "another server"
    try:
        with server.client(key) as client:
            key_id = client.me().key_id  # a fresh key: looked up now, cached from now
            store.keys.revoke(key_id)
            revoked_at = time.monotonic()
            assert client.me().key_id == key_id  # answered from the cache (< CACHE_TTL_S)
            while True:
                try:
                    client.me()
                except Unauthenticated:
                    break
                assert time.monotonic() - revoked_at < CACHE_TTL_S + 2.0, "still accepted"
                time.sleep(0.05)
    finally:
        store.close()
