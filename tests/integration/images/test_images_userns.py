"""An image's ``User`` under a runc container's user namespace: a container uid, mapped into
the container's own host range (never a host uid of its own)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.integration.conftest import Sandbox

from sandpool.api import Sandpool

pytestmark = [pytest.mark.root, pytest.mark.runc]


def test_the_image_user_runs_inside_the_containers_range(
    sp: Sandpool, no_leaks: Sandbox, factory: Any
) -> None:
    layout = factory.layout("user", {"srv/data.txt": "mine\n"}, "--config.user=1000:1000",
                            "--config.workingdir=/srv")  # fmt: skip
    script = "id -u; id -g; pwd; cat data.txt; cat /proc/self/uid_map"
    result = sp.run("performance", ["sh", "-c", script], image=f"oci:{layout}:v1")
    assert result.exit_code == 0, result
    lines = result.stdout.decode().splitlines()
    assert lines[:4] == ["1000", "1000", "/srv", "mine"]
    mapping = re.fullmatch(r"\s*0\s+(\d+)\s+65536\s*", lines[4])
    assert mapping and int(mapping[1]) >= 100000, lines[4]
