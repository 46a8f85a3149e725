"""The argv sandpool gives a stand-in ``runsc``: the pool's global flags on every subcommand,
nvproxy only for GPU containers, and the spec changes gVisor needs."""

from __future__ import annotations

import copy
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandpool.errors import OperationNotSupported, RuntimeCommandFailed
from sandpool.runtime.base import Capability, ContainerState, RunFiles
from sandpool.runtime.gvisor import GvisorRuntime
from sandpool.runtime.probe import probe_runsc
from sandpool.runtime.spec import ContainerSpec, build_spec
from tests.unit.runtime.stand_in import StandIn, verb_index, write_stand_in

EXTRA = ("--debug", "--debug-log=/tmp/sp-debug/")


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    probe_runsc.cache_clear()
    yield
    probe_runsc.cache_clear()


def _spec(tmp_path: Path, *, gpus: int = 0) -> dict[str, Any]:
    return build_spec(ContainerSpec(args=("true",), rootfs=tmp_path / "rootfs",
                                    cgroups_path="/sandpool/sp-1/ctr", gpus=gpus,
                                    gpu_devices="0" if gpus else ""))  # fmt: skip


def _runtime(stand_in: StandIn, tmp_path: Path, platform: str = "ptrace") -> GvisorRuntime:
    info = probe_runsc(str(stand_in.path))
    return GvisorRuntime(info, tmp_path / "root", platform, extra_args=EXTRA)


def _run(runtime: GvisorRuntime, tmp_path: Path, spec: dict[str, Any]) -> int:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    files = RunFiles(bundle / "pid", bundle / "runtime.log")
    return runtime.run("sp-1", bundle, runtime.prepare(spec), files).wait(timeout=30)


def _every_verb(runtime: GvisorRuntime, tmp_path: Path) -> None:
    assert _run(runtime, tmp_path, _spec(tmp_path)) == 0
    runtime.exec("sp-1", ["cat", "/etc/hostname"])
    runtime.kill("sp-1", signal.SIGTERM)
    runtime.delete("sp-1")
    runtime.state("sp-1")
    runtime.list()
    runtime.events("sp-1")


def test_every_subcommand_gets_the_same_global_flags_before_the_verb(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)
    runtime = _runtime(stand_in, tmp_path)
    stand_in.log.unlink()  # forget the probe's calls
    _every_verb(runtime, tmp_path)
    expected = ["--root", str(tmp_path / "root"), "--platform", "ptrace", "--network=none",
                *EXTRA]  # fmt: skip
    calls = stand_in.calls()
    assert stand_in.verbs() == ["run", "exec", "kill", "delete", "state", "list", "events"]
    for argv in calls:
        assert argv[: len(expected)] == expected, argv
        assert verb_index(argv) >= len(expected), argv


def test_never_ignore_cgroups(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)  # its `flags` even offers ignore-cgroups
    _every_verb(_runtime(stand_in, tmp_path), tmp_path)
    assert stand_in.calls()
    assert not [a for argv in stand_in.calls() for a in argv if "ignore-cgroups" in a]


def test_run_writes_the_log_and_pid_file_flags(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)
    _run(_runtime(stand_in, tmp_path), tmp_path, _spec(tmp_path))
    run = stand_in.calls()[-1]
    at = verb_index(run)
    assert run[at - 4 : at] == ["--log", str(tmp_path / "bundle" / "runtime.log"),
                                "--log-format", "json"]  # fmt: skip
    assert run[at:] == ["run", "--bundle", str(tmp_path / "bundle"), "--pid-file",
                        str(tmp_path / "bundle" / "pid"), "sp-1"]  # fmt: skip
    assert (tmp_path / "bundle" / "pid").read_text() == "4242"


def test_prepare_drops_seccomp_and_device_rules_without_touching_its_input(
    tmp_path: Path,
) -> None:
    spec = _spec(tmp_path)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO"}
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    before = copy.deepcopy(spec)
    prepared = _runtime(write_stand_in(tmp_path), tmp_path).prepare(spec)
    assert "seccomp" not in prepared["linux"]
    assert "devices" not in prepared["linux"]
    assert "devices" not in prepared["linux"]["resources"]
    assert prepared["linux"]["cgroupsPath"] == "/sandpool/sp-1/ctr"
    assert prepared["process"] == spec["process"]
    assert spec == before


def test_nvproxy_only_in_the_run_of_a_gpu_container(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)
    runtime = _runtime(stand_in, tmp_path)
    assert Capability.GPU_NVPROXY in runtime.capabilities
    stand_in.log.unlink()
    _run(runtime, tmp_path, _spec(tmp_path))  # no GPU
    _run(runtime, tmp_path, _spec(tmp_path, gpus=1))
    runtime.kill("sp-1")
    runtime.state("sp-1")
    with_nvproxy = [argv for argv in stand_in.calls() if "--nvproxy=true" in argv]
    assert len(with_nvproxy) == 1
    gpu_run = with_nvproxy[0]
    assert gpu_run[verb_index(gpu_run)] == "run"
    assert gpu_run.index("--nvproxy=true") < verb_index(gpu_run)


def test_gpu_container_without_nvproxy_names_the_runsc_version(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, version="release-20200101.0",
                              flags=("root", "platform", "network"))  # fmt: skip
    runtime = _runtime(stand_in, tmp_path)
    assert Capability.GPU_NVPROXY not in runtime.capabilities
    with pytest.raises(OperationNotSupported, match=r"release-20200101\.0") as caught:
        _run(runtime, tmp_path, _spec(tmp_path, gpus=1))
    assert "nvproxy" in str(caught.value)
    assert "run" not in stand_in.verbs()  # refused before anything ran
    assert _run(runtime, tmp_path, _spec(tmp_path)) == 0  # CPU containers still run


@pytest.mark.parametrize("value", ["", "void", "none"])
def test_an_empty_gpu_request_is_not_a_gpu_container(tmp_path: Path, value: str) -> None:
    stand_in = write_stand_in(tmp_path, flags=("root",))
    spec = _spec(tmp_path)
    spec["process"]["env"].append(f"NVIDIA_VISIBLE_DEVICES={value}")
    assert _run(_runtime(stand_in, tmp_path), tmp_path, spec) == 0
    assert "--nvproxy=true" not in stand_in.calls()[-1]


def test_checkpoint_and_restore_are_not_supported_by_gvisor(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path)
    runtime = _runtime(stand_in, tmp_path)
    calls = len(stand_in.calls())
    with pytest.raises(OperationNotSupported, match="not supported by gvisor"):
        runtime.checkpoint("sp-1", tmp_path / "ckpt")
    with pytest.raises(OperationNotSupported, match="not supported by gvisor"):
        runtime.restore("sp-1", tmp_path / "bundle", tmp_path / "ckpt")
    assert Capability.CHECKPOINT_RESTORE not in runtime.capabilities
    assert len(stand_in.calls()) == calls


def test_state_list_and_events_parse_stdout(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, containers=["sp-a", "sp-b"])
    runtime = _runtime(stand_in, tmp_path)
    assert runtime.state("sp-9") == ContainerState("sp-9", "running", 4242, "/b")
    assert [(s.id, s.pid, s.bundle) for s in runtime.list()] == [
        ("sp-a", 4000, "/b/sp-a"), ("sp-b", 4001, "/b/sp-b")]  # fmt: skip
    assert runtime.events("sp-9")["data"] == {"pids": {"current": 2}}
    assert runtime.exec("sp-9", ["echo", "hi"]).stdout == "exec:sp-9 echo hi\n"


def test_a_failing_subcommand_keeps_argv_status_and_stderr(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, fail_verb="state", fail_status=3,
                              fail_message="container sp-9 does not exist")  # fmt: skip
    runtime = _runtime(stand_in, tmp_path)
    with pytest.raises(RuntimeCommandFailed) as caught:
        runtime.state("sp-9")
    assert caught.value.status == 3
    assert caught.value.stderr == "container sp-9 does not exist\n"
    assert caught.value.argv[0] == str(stand_in.path)
    assert caught.value.argv[-2:] == ["state", "sp-9"]
    assert runtime.exists("sp-9") is False


def test_exec_keeps_a_non_zero_status_instead_of_raising(tmp_path: Path) -> None:
    stand_in = write_stand_in(tmp_path, fail_verb="exec", fail_status=42, fail_message="boom")
    result = _runtime(stand_in, tmp_path).exec("sp-1", ["false"])
    assert (result.status, result.stdout, result.stderr) == (42, "", "boom\n")
