"""The wrong-state answers (409) of the sandbox API on a real ``sandpool server`` with real
runc and gVisor sandboxes: each says what is wrong with the sandbox and how to get what was
asked for, never a misleading cause (a network change on a sandbox created without a network
once answered "the container could not start"). ``state_errors`` is shared with the gateway's
test (``tests/integration/dispatch/test_gateway_dashboard.py``), which asks the same through
a gateway."""

from __future__ import annotations

import pytest

from tests.integration.service.conftest import ServerProcess
from tests.integration.service.state_errors import assert_state_errors

pytestmark = [pytest.mark.root, pytest.mark.runc, pytest.mark.runsc]


@pytest.mark.parametrize("pool", ["performance", "default"])
def test_wrong_state_answers_say_what_is_wrong_and_the_fix(server: ServerProcess,
                                                           pool: str) -> None:  # fmt: skip
    with server.client(server.admin_key) as admin:
        admin.create_tenant(f"states-{pool}")
        key = admin.create_key(f"states-{pool}").key
    assert_state_errors(server.url, key, pool)
