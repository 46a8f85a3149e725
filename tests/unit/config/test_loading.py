"""Loading, resolution and precedence of the configuration sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.errors import ConfigFileError, ConfigValidationError, UnknownPool


def write(tmp_path: Path, text: str, name: str = "pools.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_embedded_default_has_gvisor_default_and_runc_performance() -> None:
    pools = LoadedConfig.load([], {}).resolved.pools
    assert pools["default"].container_runtime == "gvisor"
    assert pools["performance"].container_runtime == "runc"


def test_sandpool_config_env_var_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  pools:\n    only: {}\n")
    assert list(LoadedConfig.load([], {"SANDPOOL_CONFIG": path}).resolved.pools) == ["only"]


def test_container_runtime_resolution_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "worker:\n  containerRuntime: gvisor\n  pools:\n"
        "    inherits: {}\n    own:\n      containerRuntime: runc\n",
    )
    pools = LoadedConfig.load([path], {}).resolved.pools
    assert pools["inherits"].container_runtime == "gvisor"
    assert pools["own"].container_runtime == "runc"
    bare = LoadedConfig.load([write(tmp_path, "worker:\n  pools:\n    p: {}\n", "b.yaml")], {})
    assert bare.resolved.pools["p"].container_runtime == "runc"


def test_pod_runtime_is_null_not_empty_string(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  pools:\n    a: {}\n    b:\n      runtime: ''\n")
    pools = LoadedConfig.load([path], {}).resolved.pools
    assert pools["a"].runtime is None
    assert pools["b"].runtime is None
    assert pools["a"].public_dict()["runtime"] is None


# ---- one test per adjacent pair of sources --------------------------------------------------


def test_file_overrides_builtin_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "worker:\n  pools:\n    s:\n      containerRuntime: gvisor\n"
        "      containerRuntimeConfig:\n        gvisorRoot: /run/custom\n",
    )
    pool = LoadedConfig.load([path], {}).resolved.pools["s"]
    assert pool.gvisor_root == "/run/custom"
    assert pool.mode == "local"  # untouched built-in default


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  pools:\n    secure:\n      containerRuntime: runc\n")
    env = {
        "SANDPOOL_WORKER_POOLS_SECURE_CONTAINERRUNTIME": "gvisor",
        "SANDPOOL_WORKER_POOLS_SECURE_CONTAINERRUNTIMECONFIG_GVISORPLATFORM": "ptrace",
    }
    pool = LoadedConfig.load([path], env).resolved.pools["secure"]
    assert (pool.container_runtime, pool.gvisor_platform) == ("gvisor", "ptrace")


def test_later_file_overrides_earlier(tmp_path: Path) -> None:
    first = write(tmp_path, "worker:\n  pools:\n    p:\n      gpuType: T4\n", "1.yaml")
    second = write(tmp_path, "worker:\n  pools:\n    p:\n      runtime: nvidia\n", "2.yaml")
    pool = LoadedConfig.load([first, second], {}).resolved.pools["p"]
    assert (pool.gpu_type, pool.runtime) == ("T4", "nvidia")


def test_env_addresses_hyphenated_pool_and_lists(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  pools:\n    gpu-secure:\n      runtime: nvidia\n")
    env = {"SANDPOOL_WORKER_POOLS_GPU_SECURE_CONTAINERRUNTIMECONFIG_GVISOREXTRAARGS": "[--debug]"}
    pool = LoadedConfig.load([path], env).resolved.pools["gpu-secure"]
    assert pool.gvisor_extra_args == ("--debug",)


def test_bad_env_value_names_the_variable() -> None:
    env = {"SANDPOOL_WORKER_POOLS_DEFAULT_CONTAINERRUNTIME": "gvisr"}
    with pytest.raises(ConfigValidationError) as info:
        LoadedConfig.load([], env)
    text = str(info.value)
    assert "SANDPOOL_WORKER_POOLS_DEFAULT_CONTAINERRUNTIME" in text
    assert "did you mean 'gvisor'" in text


def test_unknown_env_key_is_an_error() -> None:
    with pytest.raises(ConfigValidationError, match="SANDPOOL_WORKER_RUNCPTH"):
        LoadedConfig.load([], {"SANDPOOL_WORKER_RUNCPTH": "/x"})


# ---- validation messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "worker:\n  pools:\n    a:\n      contanerRuntime: runc\n",
            ["worker.pools.a.contanerRuntime", "did you mean 'containerRuntime'", "line 4"],
        ),
        (
            "worker:\n  pools:\n    a:\n      containerRuntime: kata\n",
            ["worker.pools.a.containerRuntime", "'kata'", "allowed values: runc, gvisor"],
        ),
        (
            "worker:\n  pools:\n    a:\n      containerRuntimeConfig:\n"
            "        gvisorPlatform: sys\n",
            ["gvisorPlatform", "allowed values: systrap, kvm, ptrace"],
        ),
        (
            "worker:\n  pools:\n    a:\n      gpuType: [T4]\n",
            ["worker.pools.a.gpuType", "expected a string, got a list"],
        ),
        (
            "worker:\n  pools:\n    a:\n      runtimeConfig: {}\n",
            ["renamed to 'containerRuntimeConfig'", "config migrate"],
        ),
        ("worker:\n  pools:\n    a:\n      mode: remote\n", ["allowed values: local, external"]),
    ],
)
def test_validation_messages_name_path_value_and_fix(
    tmp_path: Path, yaml: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigValidationError) as info:
        LoadedConfig.load([write(tmp_path, yaml)], {})
    for fragment in expected:
        assert fragment in str(info.value)


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "worker:\n  pools:\n    a: [\n    b: c\n")
    with pytest.raises(ConfigFileError, match=r"pools.yaml line \d+: malformed YAML"):
        LoadedConfig.load([path], {})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"not found: .*absent\.yaml"):
        LoadedConfig.load([str(tmp_path / "absent.yaml")], {})


def test_legacy_runtime_meaning_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "worker:\n  pools:\n    old:\n      runtime: gvisor\n    ok:\n"
        "      runtime: nvidia\n      containerRuntime: runc\n",
    )
    warnings = LoadedConfig.load([path], {}).warnings
    assert len(warnings) == 1
    assert "worker.pools.old.runtime" in warnings[0]
    assert "containerRuntime: gvisor" in warnings[0]


def test_unknown_pool_suggests_close_name() -> None:
    with pytest.raises(UnknownPool, match="did you mean 'default'"):
        LoadedConfig.load([], {}).resolved.pool("defualt")


def test_resolved_config_json_round_trip() -> None:
    from sandpool.config import ResolvedConfig

    resolved = LoadedConfig.load([], {}).resolved
    assert ResolvedConfig.from_json(resolved.to_json()) == resolved
