"""cgroup v2 delegation decisions over a stand-in cgroupfs (the kernel's answers, EBUSY under
the no-internal-processes rule, are simulated; the VM stage runs the real thing)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from sandpool.errors import CgroupUnavailable
from sandpool.worker import delegation


def _cgroup(path: Path, available: str, enabled: str = "", procs: str = "") -> Path:
    path.mkdir(exist_ok=True)
    (path / "cgroup.controllers").write_text(available + "\n")
    (path / "cgroup.subtree_control").write_text(enabled + "\n")
    (path / "cgroup.procs").write_text(procs)
    return path


class Kernel:
    """Records enable writes; refuses them with EBUSY below a cgroup that holds processes
    until ``move_processes_to_leaf`` emptied it."""

    def __init__(self, busy: set[Path]) -> None:
        self.busy, self.enabled, self.moved = busy, list[tuple[str, str]](), list[Path]()

    def enable(self, cgroup: Path, controller: str) -> OSError | None:
        if cgroup in self.busy:
            return OSError(errno.EBUSY, "Device or resource busy")
        self.enabled.append((cgroup.name, controller))
        return None

    def move(self, cgroup: Path) -> None:
        self.moved.append(cgroup)
        self.busy.discard(cgroup)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    fake = Kernel(set())
    monkeypatch.setattr(delegation, "_enable", fake.enable)
    monkeypatch.setattr(delegation, "move_processes_to_leaf", fake.move)
    return fake


def test_enables_what_is_missing_at_the_root_and_the_parent(tmp_path: Path, kernel: Kernel) -> None:
    root = _cgroup(tmp_path / "root", "cpuset cpu io memory pids", enabled="memory")
    _cgroup(root / "sp", "cpu memory pids")
    delegation.ensure_delegated(root, "sp")
    assert kernel.enabled == [("root", "pids"), ("root", "cpu"), ("root", "cpuset"),
                              ("sp", "memory"), ("sp", "pids"), ("sp", "cpu")]  # fmt: skip
    assert kernel.moved == []


def test_a_root_holding_processes_is_emptied_into_a_leaf_first(
    tmp_path: Path, kernel: Kernel
) -> None:
    root = _cgroup(tmp_path / "root", "cpu memory pids", procs="1\n7\n")
    _cgroup(root / "sp", "cpu memory pids", enabled="cpu memory pids")
    kernel.busy.add(root)
    delegation.ensure_delegated(root, "sp")
    assert kernel.moved == [root]
    assert kernel.enabled == [("root", "memory"), ("root", "pids"), ("root", "cpu")]


def test_a_missing_controller_is_one_clear_error_naming_the_cgroup(
    tmp_path: Path, kernel: Kernel
) -> None:
    root = _cgroup(tmp_path / "root", "cpu pids")
    with pytest.raises(CgroupUnavailable) as caught:
        delegation.ensure_delegated(root, "sp")
    assert str(root) in caught.value.message and "memory controller" in caught.value.message
    assert caught.value.exit_code == 125 and kernel.enabled == []


def test_a_refused_required_controller_names_the_cgroup_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _cgroup(tmp_path / "root", "memory pids")
    monkeypatch.setattr(delegation, "_enable",
                        lambda cg, c: OSError(errno.EROFS, "Read-only file system"))  # fmt: skip
    with pytest.raises(CgroupUnavailable, match=f"enable the memory controller below cgroup {root}"
                       ": Read-only file system"):  # fmt: skip
        delegation.ensure_delegated(root, "sp")


def test_move_processes_to_leaf_gives_up_on_a_cgroup_that_never_empties(tmp_path: Path) -> None:
    root = _cgroup(tmp_path / "root", "memory pids", procs="1\n")  # a plain file keeps its pid
    with pytest.raises(CgroupUnavailable, match="keeps gaining processes"):
        delegation.move_processes_to_leaf(root)
    assert (root / "init" / "cgroup.procs").read_text() == "1"
