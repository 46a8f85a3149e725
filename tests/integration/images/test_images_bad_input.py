"""Bad input: each case is ImageNotFound or InvalidImage naming the reference, exit 125 in the CLI,
and the cache is left as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sandpool.cli.main import cli
from sandpool.errors import ImageError, ImageNotFound, InvalidImage
from sandpool.images import ImageStore


def _cases(tmp: Path, factory: Any) -> list[tuple[str, type[ImageError], str]]:
    (tmp / "junk.tar").write_text("this is not a tarball\n")
    (tmp / "emptydir").mkdir()
    layout = factory.layout("ok", {})
    index = [
        {"digest": "sha256:" + "0" * 64, "mediaType": "application/vnd.oci.image.index.v1+json"}
    ]
    (tmp / "fake-layout").mkdir()
    (tmp / "fake-layout" / "index.json").write_text(json.dumps({"manifests": index}))
    return [
        (f"oci-archive:{tmp}/missing.tar", ImageNotFound, "no such file"),
        (f"docker-archive:{tmp}/missing.tar", ImageNotFound, "no such file"),
        (f"oci-archive:{tmp}/junk.tar", InvalidImage, "not an OCI archive"),
        (f"docker-archive:{tmp}/junk.tar", InvalidImage, "not a docker archive"),
        (f"oci-archive:{tmp}/emptydir", InvalidImage, "directory"),
        (f"oci:{tmp}/missing-dir", ImageNotFound, "no such file"),
        (f"oci:{tmp}/emptydir", InvalidImage, "no such OCI layout"),
        (f"oci:{layout}:nope", ImageNotFound, "no such tag"),
        (f"oci:{tmp}/fake-layout", ImageError, ""),
        (f"{tmp}/junk.tar", InvalidImage, "a path needs a transport"),
        ("builtin:nope", ImageNotFound, "does not exist"),
        ("NotA/Valid:Ref!", InvalidImage, "invalid image reference"),
    ]


def test_store_errors_name_the_reference(tmp_path: Path, factory: Any) -> None:
    store = ImageStore(tmp_path / "state", pull_timeout=10)
    for reference, error, fragment in _cases(tmp_path, factory):
        with pytest.raises(error) as info:
            store.get(reference)
        assert reference in str(info.value), reference
        assert fragment in str(info.value), str(info.value)
    assert store.list() == []
    assert not list((tmp_path / "state" / "images" / "sha256").glob("*"))


def test_cli_exits_125_naming_the_reference(
    tmp_path: Path, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDPOOL_WORKER_STATEDIR", str(tmp_path / "state"))
    for reference, error, _ in _cases(tmp_path, factory)[:8]:
        result = CliRunner().invoke(cli, ["images", "pull", reference])
        assert result.exit_code == 125, result.output
        assert reference in result.output and error.__name__ in result.output
