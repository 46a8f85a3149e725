"""Minimums, pids sizing and the working directory check, without a runtime."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandpool.errors import ContainerStartFailed
from sandpool.worker.limits import (
    GVISOR_PIDS_BASE,
    GVISOR_PIDS_PER_PROCESS,
    MIB,
    RUNC_START_PIDS,
    check_limits,
    check_workdir,
    host_pids,
    with_cgroup_pids,
    with_guest_pids,
)


def test_memory_below_each_runtimes_minimum_is_refused() -> None:
    check_limits("runc", 8 * MIB, "8Mi", 1)
    check_limits("gvisor", 24 * MIB, "24Mi", 1)
    with pytest.raises(ContainerStartFailed, match="memory limit 1Ki is below the minimum of "
                       "8Mi that runc needs") as caught:  # fmt: skip
        check_limits("runc", 1024, "1Ki", 1)
    assert caught.value.hint == "use --memory 8Mi or more"
    with pytest.raises(ContainerStartFailed, match="minimum of 24Mi that gvisor"):
        check_limits("gvisor", 20 * MIB, "20Mi", 1)
    with pytest.raises(ContainerStartFailed, match="pids limit 0 is below the minimum of 1"):
        check_limits("runc", 8 * MIB, "8Mi", 0)


def test_host_pids_leave_room_for_the_runtime() -> None:
    assert host_pids(False, 10, has_init=True) == 11 + RUNC_START_PIDS
    assert host_pids(True, 10, has_init=True) == GVISOR_PIDS_BASE + 11 * GVISOR_PIDS_PER_PROCESS


def test_pids_go_into_the_spec_where_each_runtime_counts_them() -> None:
    spec = {"process": {"rlimits": [{"type": "RLIMIT_NPROC", "hard": 1, "soft": 1},
                                    {"type": "RLIMIT_NOFILE", "hard": 9, "soft": 9}]}}  # fmt: skip
    guest = with_guest_pids(spec, 33)
    assert guest["process"]["rlimits"][-1] == {"type": "RLIMIT_NPROC", "hard": 33, "soft": 33}
    assert [r["type"] for r in guest["process"]["rlimits"]] == ["RLIMIT_NOFILE", "RLIMIT_NPROC"]
    assert with_cgroup_pids(spec, 33)["linux"]["resources"]["pids"] == {"limit": 33}
    assert "linux" not in spec and len(spec["process"]["rlimits"]) == 2  # copies


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "bin").mkdir()
    os.symlink("/etc/passwd", tmp_path / "bin" / "abs-link")  # absolute: inside the image
    os.symlink("../etc", tmp_path / "bin" / "rel-link")
    os.symlink("loop", tmp_path / "loop")
    return tmp_path


@pytest.mark.parametrize("cwd", ["/", "/etc", "/missing/dir", "/bin/rel-link", "/loop/x",
                                 "/bin/../etc"])  # fmt: skip
def test_directories_and_missing_paths_are_fine(rootfs: Path, cwd: str) -> None:
    check_workdir(cwd, "--workdir", rootfs)


@pytest.mark.parametrize("cwd", ["/etc/passwd", "/bin/abs-link", "/bin/rel-link/passwd",
                                 "/../../etc/passwd"])  # fmt: skip
def test_a_file_in_the_image_is_refused(rootfs: Path, cwd: str) -> None:
    with pytest.raises(ContainerStartFailed, match=f"--workdir '{cwd}' is not a directory"):
        check_workdir(cwd, "--workdir", rootfs)


def test_a_relative_workdir_is_refused_naming_its_source(rootfs: Path) -> None:
    with pytest.raises(ContainerStartFailed, match="the image's WorkingDir 'app' is not an abs"):
        check_workdir("app", "the image's WorkingDir", rootfs)
