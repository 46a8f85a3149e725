"""``sandpool serve``'s warm ``Sandpool`` per configuration: kept while used, closed when idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.warm import pools
from sandpool.warm.pools import WarmSandpools


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    monkeypatch.setattr(pools, "reconcile_dead_owners", lambda config: [])  # no root here
    path = tmp_path / "pools.yaml"
    path.write_text(f"worker:\n  stateDir: {tmp_path / 'state'}\n")
    return (str(path),)


def test_a_configuration_unused_for_the_idle_timeout_is_closed(config: tuple[str, ...]) -> None:
    clock = Clock()
    warm = WarmSandpools(idle_timeout=60, clock=clock)
    first = warm.check_out(config, {})
    assert warm.check_out(config, {}) is first  # one per configuration
    warm.check_in(first)
    clock.now += 120
    assert warm.evict_idle() == []  # one run still holds it
    warm.check_in(first)
    clock.now += 59
    assert warm.evict_idle() == []
    clock.now += 1
    assert warm.evict_idle() == [first]
    assert first._cgroup_slots._closed  # its warm cgroups are removed
    again = warm.check_out(config, {})
    assert again is not first
    warm.check_in(again)
    warm.close()


def test_an_edited_configuration_gets_a_new_sandpool_and_the_old_one_goes_idle(
    config: tuple[str, ...],
) -> None:
    clock = Clock()
    warm = WarmSandpools(idle_timeout=10, clock=clock)
    old = warm.check_out(config, {})
    warm.check_in(old)
    Path(config[0]).write_text(Path(config[0]).read_text() + "  cgroupParent: edited\n")
    new = warm.check_out(config, {})
    assert new is not old and new.config.cgroup_parent == "edited"
    clock.now += 10
    assert warm.evict_idle() == [old]
    warm.check_in(new)
    warm.close()


def test_a_shared_sandpool_serves_its_configuration_and_is_never_closed_here(
    config: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sandpool server` shares its own Sandpool with the serve socket: a client naming the
    same file (by -c or $SANDPOOL_CONFIG, whatever its socket, URL or key variables) gets it."""
    from sandpool.api import Sandpool
    from sandpool.config.cache import load_resolved

    clock = Clock()
    warm = WarmSandpools(idle_timeout=10, clock=clock)
    own = Sandpool(load_resolved(config, {}))
    warm.share(config, {"SANDPOOL_ADMIN_KEY": "k"}, own)
    client_env = {"SANDPOOL_SOCKET": "/x.sock", "SANDPOOL_URL": "http://h", "SANDPOOL_API_KEY": "k"}
    assert warm.check_out(config, client_env) is own
    assert warm.check_out((), {"SANDPOOL_CONFIG": config[0]}) is own
    other = warm.check_out(config, {"SANDPOOL_WORKER_CGROUPPARENT": "other"})
    assert other is not own and other.config.cgroup_parent == "other"
    for sandpool in (own, own, other):
        warm.check_in(sandpool)
    clock.now += 60
    assert warm.evict_idle() == [other]  # the shared one is never idle
    warm.close()
    assert not own._cgroup_slots._closed  # its owner closes it
    own.close()
