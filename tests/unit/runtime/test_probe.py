"""What sandpool reads from ``runsc --version``, ``help platforms`` and ``flags``, and the
platform it chooses or refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.errors import ContainerRuntimeError, PlatformNotSupported
from sandpool.runtime.probe import RunscInfo, check_platform, default_platform, probe_runsc
from tests.unit.runtime.stand_in import write_stand_in


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    probe_runsc.cache_clear()
    yield
    probe_runsc.cache_clear()


def _info(*platforms: str) -> RunscInfo:
    return RunscInfo("/usr/bin/runsc", "release-20240212.0", platforms, frozenset())


def test_probe_reads_version_platforms_and_flags(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, version="release-20240212.0",
                              platforms=("kvm", "ptrace", "systrap"),
                              flags=("root", "debug-log", "nvproxy"))  # fmt: skip
    info = probe_runsc(str(stand_in.path))
    assert info.binary == str(stand_in.path)
    assert info.version == "release-20240212.0"
    assert info.platforms == ("kvm", "ptrace", "systrap")
    assert {"root", "debug-log", "nvproxy"} <= info.flags
    assert "description" not in info.flags  # description lines are not flags
    assert info.has_nvproxy


def test_probe_without_nvproxy(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, flags=("root", "platform"))
    assert not probe_runsc(str(stand_in.path)).has_nvproxy


def test_probe_runs_once_per_binary(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)
    first = probe_runsc(str(stand_in.path))
    calls = len(stand_in.calls())
    assert probe_runsc(str(stand_in.path)) is first
    assert len(stand_in.calls()) == calls == 3


def test_probe_without_platforms_is_an_error(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, platforms=())
    with pytest.raises(ContainerRuntimeError, match="did not list its platforms"):
        probe_runsc(str(stand_in.path))


@pytest.mark.parametrize(
    ("platforms", "chosen"),
    [(("kvm", "ptrace", "systrap"), "systrap"), (("kvm", "ptrace"), "ptrace"),
     (("ptrace", "systrap"), "systrap"), (("kvm",), "kvm")],
)  # fmt: skip
def test_default_platform_prefers_systrap_then_ptrace(
    platforms: tuple[str, ...], chosen: str
) -> None:
    assert default_platform(_info(*platforms)) == chosen


def test_a_platform_runsc_lacks_names_platform_version_and_what_it_has() -> None:
    with pytest.raises(PlatformNotSupported) as caught:
        check_platform(_info("kvm", "ptrace"), "systrap")
    message = str(caught.value)
    assert "'systrap'" in message
    assert "release-20240212.0" in message
    assert "kvm, ptrace" in message
    assert "release-20230227" in message  # when systrap appeared


def test_listed_platforms_pass() -> None:
    check_platform(_info("ptrace", "systrap"), "ptrace")
    check_platform(_info("ptrace", "systrap"), "systrap")


def test_kvm_without_a_usable_device_fails(tmp_path: Path) -> None:
    missing = tmp_path / "kvm"
    with pytest.raises(PlatformNotSupported, match=str(missing)):
        check_platform(_info("kvm", "ptrace"), "kvm", kvm_device=str(missing))


def test_kvm_with_a_usable_device_passes(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.touch(mode=0o600)
    check_platform(_info("kvm", "ptrace"), "kvm", kvm_device=str(device))
