"""The doctor's ``seccomp`` line: what filters each pool's system calls."""

from __future__ import annotations

from sandpool.doctor.report import Status
from sandpool.doctor.seccomp import seccomp_check
from sandpool.runtime.seccomp import ALLOWED_SYSCALLS
from tests.unit.doctor.conftest import Loader

POOLS = """worker:
  pools:
    fast: {containerRuntime: runc}
    secure: {containerRuntime: gvisor}
"""


def test_runc_pool_reports_the_allowlist_and_its_size(load_yaml: Loader) -> None:
    check = seccomp_check(load_yaml(POOLS).resolved.pool("fast"))
    assert (check.status, check.name) == (Status.OK, "seccomp")
    count = len(ALLOWED_SYSCALLS) + 3  # and clone, socket, personality with argument checks
    assert check.message == f"allowlist (Docker default model), {count} syscalls"


def test_gvisor_pool_reports_the_sentry(load_yaml: Loader) -> None:
    check = seccomp_check(load_yaml(POOLS).resolved.pool("secure"))
    assert check.message == "gVisor Sentry (host seccomp by runsc)"
