"""Host checks on a fake cgroup tree and a tmp state dir."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from sandpool.doctor.host import cgroup_check, serve_check, state_dir_check
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Status
from tests.unit.doctor.conftest import Loader, fake_cgroup_v1


def test_v1_with_memory_and_pids_is_ok(probes: HostProbes) -> None:
    check = cgroup_check(probes)
    assert check.status is Status.OK
    assert check.message == "cgroup v1: memory and pids controllers usable"


def test_v1_hybrid_is_named(probes: HostProbes) -> None:
    (probes.cgroup_root / "unified").mkdir()
    assert cgroup_check(probes).message.startswith("cgroup v1 (hybrid")


def test_v1_without_pids_fails_naming_it(tmp_path: Path, probes: HostProbes) -> None:
    root = fake_cgroup_v1(tmp_path / "no-pids", controllers=("memory",))
    check = cgroup_check(dataclasses.replace(probes, cgroup_root=root))
    assert check.status is Status.FAIL
    assert f"pids: no hierarchy mounted at {root / 'pids'}" in check.message
    assert "memory:" not in check.message
    assert check.fix is not None and "pids limit" in check.fix


def test_v2_lists_missing_controllers(tmp_path: Path, probes: HostProbes) -> None:
    root = tmp_path / "v2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    check = cgroup_check(dataclasses.replace(probes, cgroup_root=root))
    assert check.status is Status.FAIL
    assert check.message.startswith("cgroup v2 (unified): pids: not in")


def _v2_root(tmp_path: Path, enabled: str, procs: str, namespace_root: bool) -> Path:
    """A stand-in cgroup v2 root (a pod's cgroup namespace has ``cgroup.type``; the real
    root has not)."""
    root = tmp_path / "v2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text(enabled)
    (root / "cgroup.procs").write_text(procs)
    if namespace_root:
        (root / "cgroup.type").write_text("domain\n")
    return root


@pytest.mark.parametrize(
    ("enabled", "procs", "namespace_root", "plan"),
    [
        ("cpuset cpu memory pids\n", "1\n", False, "sandpool: nothing to change"),
        ("", "1\n", False, "sandpool will enable memory pids cpu cpuset below {root} at its "
         "first"),
        ("", "7\n9\n", True, "sandpool will move {root}'s processes into {root}/init, then "
         "enable memory pids cpu cpuset below {root}"),
    ],
)  # fmt: skip
def test_v2_says_what_is_delegated_and_what_sandpool_will_do(
    tmp_path: Path, probes: HostProbes, enabled: str, procs: str, namespace_root: bool, plan: str
) -> None:
    root = _v2_root(tmp_path, enabled, procs, namespace_root)
    check = cgroup_check(dataclasses.replace(probes, cgroup_root=root))
    assert check.status is Status.OK
    assert check.message.startswith(
        f"cgroup v2 (unified): available: cpuset cpu io memory pids; enabled below {root}: "
        f"{enabled.strip() or 'none'}; "
    )
    assert plan.format(root=root) in check.message


def test_state_dir_is_created_and_written(load_yaml: Loader, tmp_path: Path) -> None:
    check = state_dir_check(load_yaml("worker:\n  pools: {}\n").resolved)
    assert check.status is Status.OK
    assert check.message == f"{tmp_path / 'state'} writable (created it)"
    assert list((tmp_path / "state").iterdir()) == []  # the probe file is gone


def test_state_dir_that_cannot_exist_fails(tmp_path: Path, load_yaml: Loader) -> None:
    (tmp_path / "state").write_text("a file where the state dir should be")
    check = state_dir_check(load_yaml("worker:\n  pools: {}\n").resolved)
    assert check.status is Status.FAIL
    assert check.fix is not None and "worker.stateDir" in check.fix


def test_serve_check_says_whether_runs_are_served(tmp_path: Path, probes: HostProbes) -> None:
    path = tmp_path / "serve.sock"
    absent = serve_check(dataclasses.replace(probes, serve_socket=str(path)))
    assert absent.status is Status.OK
    assert absent.message.startswith(f"no `sandpool serve` on {path}: `sandpool run` starts")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(str(path))
        listener.listen(1)
        served = serve_check(dataclasses.replace(probes, serve_socket=str(path)))
    assert served.message == f"`sandpool serve` listens on {path}: `sandpool run` is served warm"
