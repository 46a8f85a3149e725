"""``sandpool doctor`` through click: lines, --json, --pool, exit statuses, no tracebacks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sandpool.cli.main import cli
from sandpool.doctor.probes import HostProbes
from tests.unit.controller.fake_kube import FakeKubeAPI
from tests.unit.doctor.conftest import BOOKWORM_RUNSC, RUNC, SmokeRecorder, stub


@pytest.fixture
def doctor(probes: HostProbes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Run ``sandpool doctor ARGS`` on the stand-in host with stub runc and runsc."""
    runc = stub(tmp_path / "bin", "runc", RUNC)
    runsc = stub(tmp_path / "bin", "runsc", BOOKWORM_RUNSC)

    def with_timeout(smoke_timeout: float) -> HostProbes:
        return dataclasses.replace(probes, smoke_timeout=smoke_timeout)

    monkeypatch.setattr("sandpool.cli.doctor_cmd.HostProbes", with_timeout)

    def run(pools: str, *args: str) -> Result:
        config = tmp_path / "pools.yaml"
        config.write_text(
            f"worker:\n  stateDir: {tmp_path / 'state'}\n  runcPath: {runc}\n"
            f"  runscPath: {runsc}\n  pools:\n"
            + pools.replace("GVISOR_ROOT", str(tmp_path / "gvisor"))
        )
        return CliRunner().invoke(cli, ["doctor", "-c", str(config), *args])

    return run


SECURE = """    secure:
      containerRuntime: gvisor
      containerRuntimeConfig: {gvisorRoot: GVISOR_ROOT}
"""
FAST = "    fast: {containerRuntime: runc}\n"


def test_healthy_pools_exit_0_with_one_line_per_check(doctor: Any, smoke: SmokeRecorder) -> None:
    result = doctor(FAST, "--smoke-timeout", "4")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok    -            config       valid: 1 pool(s) from ")
    assert [line.split()[:3] for line in lines[1:-1]] == [
        ["ok", "-", "stateDir"],
        ["ok", "-", "cgroups"],
        ["ok", "-", "serve"],
        ["ok", "fast", "pool"],
        ["ok", "fast", "runtime"],
        ["ok", "fast", "seccomp"],
        ["ok", "fast", "userns"],
        ["ok", "fast", "disk"],
        ["ok", "fast", "smoke"],
    ]
    assert lines[-1] == "10 ok, 0 warn, 0 fail: no failures"
    assert smoke.calls == [("fast", 4.0)]


def test_explicit_systrap_fails_with_exit_1_and_skips_the_smoke_test(
    doctor: Any, smoke: SmokeRecorder
) -> None:
    systrap = SECURE.replace("{gvisorRoot", "{gvisorPlatform: systrap, gvisorRoot")
    result = doctor(systrap)
    assert result.exit_code == 1
    assert (
        "fail  secure       platform     gVisor platform 'systrap' is not offered" in result.output
    )
    assert "which has: kvm, ptrace" in result.output
    assert "fail  secure       smoke        not run" in result.output
    assert smoke.calls == []
    assert result.output.rstrip().endswith("problems found")


def test_json_is_one_object_with_every_check(doctor: Any) -> None:
    result = doctor(FAST + SECURE, "--json", "--pool", "fast")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] is True and body["exitCode"] == 0
    assert {c["pool"] for c in body["checks"]} == {None, "fast"}
    assert {"check", "status", "message", "fix"} <= set(body["checks"][0])


def test_unknown_pool_exits_2_with_a_did_you_mean(doctor: Any) -> None:
    result = doctor(FAST, "--pool", "fats")
    assert result.exit_code == 2
    assert "fail  -            pool         unknown pool 'fats'" in result.output
    assert "fix: did you mean 'fast'?" in result.output
    assert "Traceback" not in result.output


def test_invalid_config_exits_2_as_a_failed_config_check(doctor: Any) -> None:
    result = doctor("    bad: {containerRuntime: rnc}\n", "--json")
    assert result.exit_code == 2
    (check,) = json.loads(result.output)["checks"]
    assert (check["check"], check["status"]) == ("config", "fail")
    assert "'rnc' is not allowed" in check["message"]


def test_legacy_field_is_a_warning_not_a_failure(doctor: Any) -> None:
    result = doctor("    old: {runtime: runc}\n")
    assert result.exit_code == 0, result.output
    assert "warn  -            config       worker.pools.old.runtime" in result.output


def test_kube_reports_a_missing_runtime_class_and_exits_1(doctor: Any, tmp_path: Path) -> None:
    api = FakeKubeAPI().start()
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        result = doctor(
            "    gpu: {runtime: nvidia, containerRuntime: runc}\n",
            "--kube",
            "--kubeconfig",
            kubeconfig,
        )
    finally:
        api.stop()
    assert result.exit_code == 1, result.output
    assert "ok    -            cluster      API server answers" in result.output
    assert 'fail  gpu          runtimeClass RuntimeClass "nvidia" not found' in result.output
    assert "install the NVIDIA GPU Operator" in result.output


def test_without_kube_the_cluster_is_not_contacted(doctor: Any) -> None:
    result = doctor(FAST)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if " cluster " in line[:32]] == []
