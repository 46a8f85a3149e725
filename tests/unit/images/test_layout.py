"""Reading an OCI layout: the tag's manifest digest, the config, and the platform check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sandpool.errors import InvalidImage
from sandpool.images.layout import host_architecture, read_image


def _blob(layout: Path, data: dict[str, Any]) -> str:
    raw = json.dumps(data).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(raw)
    return f"sha256:{digest}"


def make_layout(layout: Path, *, arch: str | None = None, config: dict[str, Any]) -> str:
    """A minimal OCI layout tagged ``t``; returns the manifest digest."""
    cfg = {"architecture": arch or host_architecture(), "os": "linux", "config": config}
    manifest = {"schemaVersion": 2, "config": {"digest": _blob(layout, cfg)}, "layers": []}
    digest = _blob(layout, manifest)
    entry = {"digest": digest, "annotations": {"org.opencontainers.image.ref.name": "t"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return digest


def test_config_fields_are_read(tmp_path: Path) -> None:
    config = {
        "Env": ["A=1", "PATH=/bin"],
        "WorkingDir": "/work",
        "User": "1000:1000",
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
    }
    digest = make_layout(tmp_path, config=config)
    image = read_image(tmp_path, "t", "ref")
    assert image.digest == digest
    assert image.env == ("A=1", "PATH=/bin")
    assert (image.working_dir, image.user) == ("/work", "1000:1000")
    assert image.entrypoint == ("/bin/sh", "-c")
    assert image.cmd == ("echo hi",)


def test_unset_fields_are_empty(tmp_path: Path) -> None:
    make_layout(tmp_path, config={"Entrypoint": None})
    image = read_image(tmp_path, "t", "ref")
    assert (image.env, image.working_dir, image.user, image.entrypoint, image.cmd) == (
        (),
        "",
        "",
        (),
        (),
    )


def test_other_architecture_is_refused_naming_the_reference(tmp_path: Path) -> None:
    other = "arm64" if host_architecture() != "arm64" else "amd64"
    make_layout(tmp_path, arch=other, config={})
    with pytest.raises(InvalidImage, match=f"'my-ref' is for linux/{other}"):
        read_image(tmp_path, "t", "my-ref")


def test_missing_tag_is_invalid(tmp_path: Path) -> None:
    make_layout(tmp_path, config={})
    with pytest.raises(InvalidImage, match="no manifest tagged 'other'"):
        read_image(tmp_path, "other", "ref")


def test_unreadable_index_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(InvalidImage, match="'ref'"):
        read_image(tmp_path, "t", "ref")
