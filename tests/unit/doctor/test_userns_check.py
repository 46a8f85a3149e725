"""The doctor's per-pool userns line: on, off with the reason and a fix, not used on gVisor."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sandpool.config import LoadedConfig
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Status
from sandpool.doctor.userns import userns_check, userns_off_reason


def _config(tmp_path: Path, worker: str = "") -> LoadedConfig:
    path = tmp_path / "pools.yaml"
    path.write_text(f"worker:\n  stateDir: {tmp_path}\n{worker}  pools:\n"
                    "    fast: {containerRuntime: runc}\n"
                    "    secure: {containerRuntime: gvisor}\n")  # fmt: skip
    return LoadedConfig.load([str(path)], {})


def test_on_names_the_host_ids(tmp_path: Path, probes: HostProbes) -> None:
    config = _config(tmp_path).resolved
    check = userns_check(config.pool("fast"), config, probes)
    assert check.status is Status.OK
    assert check.message.startswith("on: container root is host uid/gid 100000+")


def test_off_says_why_with_a_fix(tmp_path: Path, probes: HostProbes) -> None:
    config = _config(tmp_path).resolved
    reason = "idmapped mounts unavailable"
    no_idmap = dataclasses.replace(probes, userns_off_reason=lambda config: reason)
    check = userns_check(config.pool("fast"), config, no_idmap)
    assert check.status is Status.WARN
    assert "off: runc containers run as host root inside (idmapped mounts unavailable)" in (
        check.message
    )
    assert check.fix is not None and "gVisor pool" in check.fix


def test_gvisor_pools_do_not_use_it(tmp_path: Path, probes: HostProbes) -> None:
    config = _config(tmp_path).resolved
    check = userns_check(config.pool("secure"), config, probes)
    assert check.status is Status.OK and check.message.startswith("not used: gVisor")


def test_a_zero_base_turns_it_off(tmp_path: Path) -> None:
    config = _config(tmp_path, "  userNamespaceBase: 0\n").resolved
    assert userns_off_reason(config) == "worker.userNamespaceBase is 0 (turned off)"
