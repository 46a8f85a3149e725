"""The doctor's ``disk`` line: whether each pool's disk limit can be enforced on this host."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from sandpool.doctor.disk import disk_check
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Status
from tests.unit.doctor.conftest import Loader

POOLS = "worker:\n  pools:\n    fast:\n      containerDefaults: {disk: 2Gi}\n"


def test_a_host_with_everything_reports_the_pools_limit(load_yaml: Loader,
                                                       probes: HostProbes) -> None:  # fmt: skip
    check = disk_check(load_yaml(POOLS).resolved.pool("fast"), probes)
    assert (check.status, check.name) == (Status.OK, "disk")
    assert check.message.startswith("limit 2Gi per container, enforced: a loop-mounted ext4")


def _no_ext4(probes: HostProbes) -> HostProbes:
    Path(probes.proc_filesystems).write_text("nodev\tproc\n\txfs\n")
    return probes


def _no_loop(probes: HostProbes) -> HostProbes:
    (probes.dev_dir / "loop-control").unlink()
    return probes


@pytest.mark.parametrize(
    ("breaks", "problem"),
    [(lambda p: dataclasses.replace(p, mkfs_ext4="no-such-mkfs"), "no-such-mkfs not found"),
     (_no_loop, "no loop devices"),
     (_no_ext4, "the kernel offers no ext4 filesystem")],
)  # fmt: skip
def test_what_is_missing_is_a_failure_with_the_fix(
    load_yaml: Loader, probes: HostProbes, breaks: Callable[[HostProbes], HostProbes], problem: str
) -> None:
    broken = breaks(probes)
    check = disk_check(load_yaml(POOLS).resolved.pool("fast"), broken)
    assert check.status == Status.FAIL
    assert problem in check.message and "e2fsprogs" in (check.fix or "")
