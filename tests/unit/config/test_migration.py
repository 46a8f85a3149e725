"""``config migrate``'s text rewrite: old field names to new ones, every other byte kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandpool.config import LoadedConfig
from sandpool.config.migration import migrate, read_config_text, write_atomically
from sandpool.config.sources import parse_yaml
from sandpool.errors import ConfigFileError, ConfigValidationError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "seed"

OLD = """\
# Production pools (comment kept)
worker:
  pools:
    legacy:   # an old Beta9 pool
      mode: local
      runtime: gvisor   # meant: user containers in gVisor
      runtimeConfig:    # old name
        gvisorPlatform: ptrace
      gpuType: ''
    gpu:
      runtime: nvidia
      containerRuntime: runc
      runtimeConfig: {gvisorRoot: /run/g}
"""

NEW = """\
# Production pools (comment kept)
worker:
  pools:
    legacy:   # an old Beta9 pool
      mode: local
      containerRuntime: gvisor   # meant: user containers in gVisor
      containerRuntimeConfig:    # old name
        gvisorPlatform: ptrace
      gpuType: ''
    gpu:
      runtime: nvidia
      containerRuntime: runc
      containerRuntimeConfig: {gvisorRoot: /run/g}
"""


def loaded(text: str) -> LoadedConfig:
    doc, origins = parse_yaml(text, "test")
    return LoadedConfig.from_document(doc, origins, ["test"])


def test_renames_in_place_keeping_comments_and_order() -> None:
    result = migrate(OLD)
    assert result.text == NEW
    assert len(result.changes) == 3
    assert "line 6: worker.pools.legacy.runtime -> containerRuntime" in result.changes[0]


def test_migrated_output_validates_without_warnings() -> None:
    with pytest.raises(ConfigValidationError, match="renamed to 'containerRuntimeConfig'"):
        loaded(OLD)
    config = loaded(migrate(OLD).text)
    assert config.warnings == []
    legacy = config.resolved.pools["legacy"]
    assert (legacy.runtime, legacy.container_runtime, legacy.gvisor_platform) == (
        None,
        "gvisor",
        "ptrace",
    )
    gpu = config.resolved.pools["gpu"]
    assert (gpu.runtime, gpu.container_runtime, gpu.gvisor_root) == ("nvidia", "runc", "/run/g")


@pytest.mark.parametrize(
    "pool",
    [
        "runtime: nvidia\n      containerRuntime: runc",  # new names already
        "runtime: runc\n      containerRuntime: gvisor",  # runtime is a pod RuntimeClass here
        "runtime: kata",  # a real RuntimeClass, container runtime defaulted
        "runtime: RUNC",  # not the legacy value; validation will judge it
    ],
)
def test_pools_using_new_names_are_untouched(pool: str) -> None:
    text = f"worker:\n  pools:\n    p:\n      {pool}\n"
    result = migrate(text)
    assert (result.text, result.changed) == (text, False)


def test_untouched_pool_is_byte_for_byte_identical() -> None:
    keep = "    keep:   \n      runtime:   nvidia   # odd spacing\n      containerRuntime: 'runc'\n"
    text = f"worker:\n  pools:\n{keep}    old: {{runtime: runc}}\n"
    result = migrate(text)
    assert result.text == f"worker:\n  pools:\n{keep}    old: {{containerRuntime: runc}}\n"


def test_quoted_keys_and_crlf_line_endings_are_kept() -> None:
    lines = ["worker:", " pools:", "  a:", '    "runtime": gvisor', "    'runtimeConfig': {}"]
    text = "\r\n".join(lines) + "\r\n"
    expected = text.replace('"runtime"', '"containerRuntime"').replace(
        "'runtimeConfig'", "'containerRuntimeConfig'"
    )
    assert migrate(text).text == expected


def test_both_old_and_new_config_keys_is_an_error() -> None:
    text = "worker:\n  pools:\n    a:\n      runtimeConfig: {}\n      containerRuntimeConfig: {}\n"
    with pytest.raises(ConfigValidationError, match=r"worker\.pools\.a: both 'runtimeConfig'"):
        migrate(text)


@pytest.mark.parametrize("text", ["worker:\n  pools: [\n", "- a\n- b\n"])
def test_bad_yaml_is_a_config_file_error(text: str) -> None:
    with pytest.raises(ConfigFileError):
        migrate(text, "bad.yaml")


def test_documents_without_pools_need_nothing() -> None:
    for text in ["", "worker: {}\n", "worker:\n  pools:\n    a: null\n"]:
        assert not migrate(text).changed


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_seed_configurations_need_no_migration(fixture: Path) -> None:
    text = fixture.read_text(encoding="utf-8")
    assert migrate(text).text == text


def test_write_atomically_keeps_mode_and_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.yaml"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    write_atomically(link, "new\r\n")
    assert link.is_symlink()
    assert target.read_bytes() == b"new\r\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_read_config_text_names_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"not found: .*gone\.yaml"):
        read_config_text(tmp_path / "gone.yaml")


def test_write_failure_leaves_file_unchanged_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "c.yaml"
    target.write_text("old\n")

    def refuse(src: str, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigFileError, match=r"cannot write .*c\.yaml.*the file is unchanged"):
        write_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]
