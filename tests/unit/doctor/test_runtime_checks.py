"""A pool's runtime: binary and version, gVisor platform, kvm, gvisorRoot (stub binaries)."""

from __future__ import annotations

from pathlib import Path

from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, Status
from sandpool.doctor.runtime_checks import runtime_checks
from tests.unit.doctor.conftest import (
    BOOKWORM_RUNSC,
    NVPROXY_RUNSC,
    RUNC,
    RUNSC_VERSION,
    Loader,
    gvisor_pool,
    stub,
)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def gvisor(
    load_yaml: Loader,
    tmp_path: Path,
    probes: HostProbes,
    platform: str = "",
    runsc_body: str = BOOKWORM_RUNSC,
) -> dict[str, Check]:
    runsc = stub(tmp_path / "bin", "runsc", runsc_body)
    extra = f"        gvisorPlatform: {platform}\n" if platform else ""
    config = load_yaml(gvisor_pool(runsc, tmp_path / "gvisor", extra)).resolved
    found = runtime_checks(config.pool("secure"), config, probes)
    assert found.ready == all(not c.failed for c in found.checks)
    return by_name(found.checks)


def test_runc_binary_and_version(load_yaml: Loader, tmp_path: Path, probes: HostProbes) -> None:
    runc = stub(tmp_path / "bin", "runc", RUNC)
    config = load_yaml(f"worker:\n  runcPath: {runc}\n  pools:\n    fast: {{}}\n").resolved
    found = runtime_checks(config.pool("fast"), config, probes)
    assert [(c.name, c.status) for c in found.checks] == [("runtime", Status.OK)]
    assert found.checks[0].message == f"runc 1.1.5+ds1 at {runc}"
    assert found.version == "1.1.5+ds1"
    assert found.ready


def test_defaulted_platform_on_bookworm_runsc_is_ptrace(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    checks = gvisor(load_yaml, tmp_path, probes)
    assert checks["runtime"].status is Status.OK
    assert RUNSC_VERSION in checks["runtime"].message
    assert checks["platform"].status is Status.OK
    assert checks["platform"].message.startswith("ptrace (default: this runsc has no systrap)")
    assert "kvm" not in checks  # only checked when the platform is kvm
    assert checks["gvisorRoot"].status is Status.OK
    assert "(created it)" in checks["gvisorRoot"].message
    assert (tmp_path / "gvisor").is_dir()


def test_defaulted_platform_is_systrap_when_offered(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    checks = gvisor(load_yaml, tmp_path, probes, runsc_body=NVPROXY_RUNSC)
    assert checks["platform"].message.startswith("systrap (default)")


def test_explicit_systrap_fails_naming_what_this_runsc_has(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    platform = gvisor(load_yaml, tmp_path, probes, "systrap")["platform"]
    assert platform.status is Status.FAIL
    assert "'systrap' is not offered" in platform.message
    assert "kvm, ptrace" in platform.message
    assert RUNSC_VERSION in platform.message
    assert platform.fix is not None and "release-20230227" in platform.fix


def test_kvm_without_a_usable_device_fails(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    checks = gvisor(load_yaml, tmp_path, probes, "kvm")
    assert checks["platform"].status is Status.OK
    assert checks["kvm"].status is Status.FAIL
    assert probes.kvm_device in checks["kvm"].message
    assert checks["kvm"].fix is not None and "systrap or ptrace" in checks["kvm"].fix


def test_kvm_with_a_usable_device_passes(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    Path(probes.kvm_device).write_text("")
    checks = gvisor(load_yaml, tmp_path, probes, "kvm")
    assert checks["kvm"].status is Status.OK


def test_missing_runsc_is_the_factorys_error(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    missing = str(tmp_path / "nowhere" / "runsc")
    config = load_yaml(gvisor_pool(missing, tmp_path / "gvisor")).resolved
    found = runtime_checks(config.pool("secure"), config, probes)
    (check,) = found.checks
    assert check.status is Status.FAIL
    assert check.message == (
        f"failed to create gvisor runtime: runsc not found at {missing} "
        "(install the runsc package or set worker.runscPath)"
    )
    assert check.fix is not None and "containerRuntime: runc" in check.fix  # the seed's fallback
    assert not found.ready


def test_broken_runtime_binary_fails_with_its_stderr(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    runc = stub(tmp_path / "bin", "runc", "echo 'cannot load libseccomp' >&2; exit 3")
    config = load_yaml(f"worker:\n  runcPath: {runc}\n  pools:\n    fast: {{}}\n").resolved
    (check,) = runtime_checks(config.pool("fast"), config, probes).checks
    assert check.status is Status.FAIL
    assert check.message == f"{runc} --version exited 3: cannot load libseccomp"


def test_unwritable_gvisor_root_fails(
    load_yaml: Loader, tmp_path: Path, probes: HostProbes
) -> None:
    runsc = stub(tmp_path / "bin", "runsc", BOOKWORM_RUNSC)
    (tmp_path / "a-file").write_text("")
    config = load_yaml(gvisor_pool(runsc, tmp_path / "a-file" / "gvisor")).resolved
    checks = by_name(runtime_checks(config.pool("secure"), config, probes).checks)
    assert checks["gvisorRoot"].status is Status.FAIL
    assert "not writable" in checks["gvisorRoot"].message
    assert checks["gvisorRoot"].fix is not None and "gvisorRoot" in checks["gvisorRoot"].fix
