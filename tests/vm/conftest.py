"""Boots the test VM as soon as the session's collection ends, if the VM stage was selected,
so that it runs beside the host's tests (see ``stage.py``); kills it if the session ends
before the stage took it."""

from __future__ import annotations

import pytest

from tests.vm.kernel import VmUnavailable
from tests.vm.stage import EARLY, early_start_wanted, start


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not early_start_wanted():
        return
    if not any(item.get_closest_marker("vm") for item in session.items):
        return
    try:
        EARLY.append(start())
    except VmUnavailable:
        return  # the stage's fixture says what is missing, at its turn


def pytest_sessionfinish(session: pytest.Session) -> None:
    while EARLY:
        EARLY.pop().boot.stop()
