"""Stand-in cgroup trees are plain directories: the kernel's files (``cgroup.controllers``,
``cgroup.procs``) do not appear in them, so cgroup v2 delegation (tested on its own in
``test_delegation.py`` and for real in the VM stage) only creates sandpool's parent here."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.worker import cgroups


@pytest.fixture(autouse=True)
def _no_v2_delegation(monkeypatch: pytest.MonkeyPatch) -> None:
    def make_parent(root: Path, parent: str) -> None:
        (root / parent).mkdir(exist_ok=True)

    monkeypatch.setattr(cgroups, "ensure_delegated", make_parent)
