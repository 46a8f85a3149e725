"""``sandpool config validate|show|migrate`` and ``sandpool explain`` through click's runner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sandpool.cli.main import cli
from sandpool.config import LoadedConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "seed"
MIXED = str(FIXTURES / "11-example4-mixed-environment.yaml")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SANDPOOL_* variable of the developer's shell leaks into a test."""
    for name in [n for n in os.environ if n.startswith("SANDPOOL_")]:
        monkeypatch.delenv(name)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def failed_cleanly(result: Result) -> None:
    """Exit 2, the error on stderr only, and no Python traceback anywhere."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert re.match(r"(ConfigFileError|ConfigValidationError|UnknownPool): ", result.stderr)


def write(tmp_path: Path, text: str, name: str = "pools.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---- validate ---------------------------------------------------------------------------------


def test_validate_accepts_seed_example() -> None:
    result = run("config", "validate", "-c", MIXED)
    assert result.exit_code == 0
    assert "4 pool(s)" in result.stdout
    assert "sandbox (gvisor)" in result.stdout


def test_validate_without_config_uses_embedded_default() -> None:
    result = run("config", "validate")
    assert result.exit_code == 0
    assert "<embedded default>" in result.stdout
    assert "default (gvisor)" in result.stdout and "performance (runc)" in result.stdout


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "worker:\n  pools:\n    a:\n      containerRuntme: gvisor\n      mode: remote\n",
            ["2 problems", "did you mean 'containerRuntime'", "allowed values: local, external"],
        ),
        ("worker:\n  pools:\n    a: [\n", ["malformed YAML", "line"]),
        ("worker:\n  pools:\n    a:\n      runtimeConfig: {}\n", ["containerRuntimeConfig"]),
    ],
)
def test_validate_reports_every_problem_on_stderr(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    result = run("config", "validate", "-c", write(tmp_path, text))
    failed_cleanly(result)
    for fragment in fragments:
        assert fragment in result.stderr


def test_validate_names_missing_file(tmp_path: Path) -> None:
    result = run("config", "validate", "-c", str(tmp_path / "nope.yaml"))
    failed_cleanly(result)
    assert "nope.yaml" in result.stderr


def test_legacy_runtime_value_warns_on_stderr(tmp_path: Path) -> None:
    result = run(
        "config",
        "validate",
        "-c",
        write(tmp_path, "worker:\n  pools:\n    a:\n      runtime: runc\n"),
    )
    assert result.exit_code == 0
    assert "warning: worker.pools.a.runtime" in result.stderr
    assert "containerRuntime: runc" in result.stderr


# ---- show --------------------------------------------------------------------------------------


def shown(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run("config", "show", "--json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_show_json_shape() -> None:
    pools = shown("-c", MIXED)["worker"]["pools"]
    assert list(pools) == ["performance", "sandbox", "gpu-fast", "gpu-secure"]
    assert pools["performance"]["runtime"] is None  # null, never ""
    assert pools["gpu-fast"]["runtime"] == "nvidia"
    assert pools["sandbox"]["containerRuntime"] == "gvisor"
    assert pools["sandbox"]["containerRuntimeConfig"]["gvisorPlatform"] == "systrap"
    assert pools["performance"]["containerRuntimeConfig"]["gvisorRoot"] == "/run/gvisor"
    assert {p["mode"] for p in pools.values()} == {"local"}
    assert {p["gpuType"] for p in pools.values()} == {""}


def test_show_one_pool_and_unknown_pool() -> None:
    assert list(shown("-c", MIXED, "--pool", "gpu-secure")["worker"]["pools"]) == ["gpu-secure"]
    result = run("config", "show", "-c", MIXED, "--pool", "gpu-secur")
    failed_cleanly(result)
    assert "did you mean 'gpu-secure'" in result.stderr


def test_show_yaml_is_the_same_data() -> None:
    from ruamel.yaml import YAML

    result = run("config", "show", "-c", MIXED)
    assert result.exit_code == 0
    assert YAML(typ="safe").load(result.stdout) == shown("-c", MIXED)


def test_environment_overrides_file() -> None:
    env = {
        "SANDPOOL_WORKER_POOLS_PERFORMANCE_CONTAINERRUNTIME": "gvisor",
        "SANDPOOL_WORKER_POOLS_GPU_SECURE_CONTAINERRUNTIMECONFIG_GVISORPLATFORM": "ptrace",
    }
    pools = shown("-c", MIXED, env=env)["worker"]["pools"]
    assert pools["performance"]["containerRuntime"] == "gvisor"
    assert pools["gpu-secure"]["containerRuntimeConfig"]["gvisorPlatform"] == "ptrace"


def test_sandpool_config_variable_names_the_file() -> None:
    pools = shown(env={"SANDPOOL_CONFIG": MIXED})["worker"]["pools"]
    assert "gpu-secure" in pools


def test_bad_environment_value_names_the_variable() -> None:
    var = "SANDPOOL_WORKER_POOLS_SANDBOX_CONTAINERRUNTIME"
    result = run("config", "validate", "-c", MIXED, env={var: "gvsior"})
    failed_cleanly(result)
    assert f"environment variable {var}" in result.stderr
    assert "did you mean 'gvisor'" in result.stderr


# ---- migrate -----------------------------------------------------------------------------------

OLD = """\
# keep me
worker:
  pools:
    old:
      runtime: gvisor  # legacy
      runtimeConfig:
        gvisorPlatform: ptrace
"""
NEW = OLD.replace("runtime: gvisor", "containerRuntime: gvisor").replace(
    "runtimeConfig:", "containerRuntimeConfig:"
)


def test_migrate_prints_new_yaml_and_summary(tmp_path: Path) -> None:
    path = write(tmp_path, OLD)
    result = run("config", "migrate", path)
    assert result.exit_code == 0
    assert result.stdout == NEW
    assert "2 change(s)" in result.stderr
    assert "worker.pools.old.runtimeConfig -> containerRuntimeConfig" in result.stderr
    assert Path(path).read_text() == OLD  # printing never writes


def test_migrate_write_rewrites_in_place_and_then_is_a_no_op(tmp_path: Path) -> None:
    path = write(tmp_path, OLD)
    result = run("config", "migrate", path, "--write")
    assert result.exit_code == 0
    assert "written in place" in result.stdout
    assert Path(path).read_text() == NEW
    assert LoadedConfig.load([path], {}).resolved.pools["old"].gvisor_platform == "ptrace"
    again = run("config", "migrate", path, "--write")
    assert again.exit_code == 0
    assert "no change needed" in again.stdout
    assert Path(path).read_text() == NEW


def test_migrate_leaves_new_style_file_alone() -> None:
    result = run("config", "migrate", MIXED)
    assert result.exit_code == 0
    assert result.stdout == Path(MIXED).read_text()
    assert "no change needed" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "worker:\n  pools: [\n",  # malformed
        "worker:\n  pools:\n    a:\n      runtime: gvisor\n      mode: remote\n",  # still invalid
        "worker:\n  pools:\n    a:\n      runtimeConfig: {}\n      containerRuntimeConfig: {}\n",
    ],
)
def test_migrate_bad_file_fails_cleanly_and_writes_nothing(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    result = run("config", "migrate", path, "--write")
    failed_cleanly(result)
    assert Path(path).read_text() == text


def test_migrate_missing_file(tmp_path: Path) -> None:
    failed_cleanly(run("config", "migrate", str(tmp_path / "gone.yaml")))


# ---- explain -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "pool", "runtime", "crt", "row"),
    [
        (
            ["--no-gpu", "--no-isolation"],
            "performance",
            None,
            "runc",
            "| (default) | runc | ❌ | Low |",
        ),
        (
            ["--no-gpu", "--isolation"],
            "sandbox",
            None,
            "gvisor",
            "| (default) | gvisor | ❌ | High |",
        ),
        (["--gpu", "--no-isolation"], "gpu-fast", "nvidia", "runc", "| nvidia | runc | ✅ | Low |"),
        (
            ["--gpu", "--isolation"],
            "gpu-secure",
            "nvidia",
            "gvisor",
            "| nvidia | gvisor | ✅ | High |",
        ),
    ],
)
def test_explain_prints_a_loadable_pool_and_its_matrix_row(
    tmp_path: Path, flags: list[str], pool: str, runtime: str | None, crt: str, row: str
) -> None:
    result = run("explain", *flags)
    assert result.exit_code == 0
    assert row in result.stdout
    assert result.stdout.count("| nvidia |") + result.stdout.count("| (default) |") == 1
    path = write(tmp_path, result.stdout, "explained.yaml")
    loaded = LoadedConfig.load([path], {})
    assert list(loaded.resolved.pools) == [pool]
    resolved = loaded.resolved.pools[pool]
    assert (resolved.runtime, resolved.container_runtime) == (runtime, crt)
    assert shown("-c", path)["worker"]["pools"][pool]["runtime"] == runtime


def test_explain_without_an_answer_shows_both_branches(tmp_path: Path) -> None:
    result = run("explain", "--gpu")
    assert result.exit_code == 0
    assert "Do USER containers need isolation?  not answered" in result.stdout
    assert "Yes -> containerRuntime: gvisor" in result.stdout
    assert "No  -> containerRuntime: runc" in result.stdout
    pools = LoadedConfig.load([write(tmp_path, result.stdout)], {}).resolved.pools
    assert list(pools) == ["gpu-fast", "gpu-secure"]
    everything = run("explain")
    assert LoadedConfig.load(
        [write(tmp_path, everything.stdout, "all.yaml")], {}
    ).resolved.pools.keys() == {
        "performance",
        "sandbox",
        "gpu-fast",
        "gpu-secure",
    }
