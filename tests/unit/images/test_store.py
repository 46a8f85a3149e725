"""The cache's bookkeeping without any tool: hits, misses, removal, the index and its locks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import sandpool.images
from sandpool.errors import ImageNotFound, InvalidImage
from sandpool.images import DEFAULT_IMAGE, ImageStore, choose_reference
from sandpool.images.index import ImageIndex, file_lock

DIGEST = "sha256:" + "ab" * 32


def _no_subprocess(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a subprocess was started: {args}")


def _seed(store: ImageStore, key: str, stamp: str | None = None) -> Path:
    """Write a cached image by hand, as a finished pull would have."""
    rootfs = store.rootfs_path(DIGEST)
    rootfs.mkdir(parents=True)
    record = {
        "env": ["A=1"],
        "workingDir": "/w",
        "user": "7",
        "entrypoint": ["/e"],
        "cmd": ["c"],
        "sizeBytes": 42,
        "created": "",
    }
    with ImageIndex(store.root).editing() as data:
        data["images"][DIGEST] = record
        data["references"][key] = {"digest": DIGEST, "stamp": stamp}
    return rootfs


def test_exports_are_declared() -> None:
    for name in sandpool.images.__all__:
        assert hasattr(sandpool.images, name)


def test_choose_reference_precedence() -> None:
    assert choose_reference("a:1", "b:2") == "a:1"
    assert choose_reference(None, "b:2") == "b:2"
    assert choose_reference(None, "") == DEFAULT_IMAGE


def test_cache_hit_runs_no_subprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path)
    rootfs = _seed(store, "docker://docker.io/library/busybox:latest")
    monkeypatch.setattr(subprocess, "Popen", _no_subprocess)
    image = store.get("busybox")
    assert image.reference == "busybox"
    assert (image.digest, image.rootfs, image.size_bytes) == (DIGEST, rootfs, 42)
    assert (image.env, image.working_dir, image.user) == (("A=1",), "/w", "7")
    assert (image.entrypoint, image.cmd) == (("/e",), ("c",))


def test_missing_archive_fails_before_any_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "Popen", _no_subprocess)
    missing = tmp_path / "nope.tar"
    with pytest.raises(ImageNotFound, match=f"'oci-archive:{missing}'"):
        ImageStore(tmp_path / "state").get(f"oci-archive:{missing}")
    with pytest.raises(InvalidImage, match="no such OCI layout"):
        ImageStore(tmp_path / "state").get(f"oci:{tmp_path}")


def test_changed_archive_is_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "a.tar"
    archive.write_text("x")
    store = ImageStore(tmp_path / "state")
    _seed(store, f"oci-archive:{archive}", stamp="0:0:0")  # not this file's stamp
    pulled: list[str] = []
    monkeypatch.setattr(store, "_pull", lambda ref, refresh: pulled.append(ref.key))
    store.get(f"oci-archive:{archive}")
    assert pulled == [f"oci-archive:{archive}"]


def test_remove_unknown_reference_names_it(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="'busybox' is not in the cache"):
        ImageStore(tmp_path).remove("busybox")


def test_remove_last_reference_deletes_rootfs(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    rootfs = _seed(store, "docker://docker.io/library/busybox:latest")
    store.remove("docker.io/library/busybox")
    assert not rootfs.exists()
    assert store.list() == []


def test_remove_by_digest_prefix(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    rootfs = _seed(store, "builtin:busybox")
    store.remove(DIGEST[7:19])
    assert not rootfs.exists()


def test_prune_keeps_referenced_unless_everything(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    rootfs = _seed(store, "builtin:busybox")
    assert store.prune() == []
    assert rootfs.exists()
    assert [i.digest for i in store.prune(everything=True)] == [DIGEST]
    assert not rootfs.exists()


def test_prune_sweeps_staging_of_dead_pulls(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    dead = store.root / "tmp" / "999999999-abc"
    dead.mkdir(parents=True)
    store.prune()
    assert not dead.exists()


def test_index_is_reread_only_when_replaced(tmp_path: Path) -> None:
    index = ImageIndex(tmp_path)
    assert index.read()["references"] == {}
    with index.editing() as data:
        data["references"]["k"] = {"digest": "d"}
    first = index.read()
    assert first["references"] == {"k": {"digest": "d"}}
    assert index.read() is first
    assert json.loads((tmp_path / "index.json").read_text())["version"] == 1


def test_failed_edit_changes_nothing(tmp_path: Path) -> None:
    index = ImageIndex(tmp_path)
    with pytest.raises(RuntimeError), index.editing() as data:
        data["references"]["k"] = {"digest": "d"}
        raise RuntimeError
    assert index.read()["references"] == {}


def test_file_lock_excludes(tmp_path: Path) -> None:
    lock = tmp_path / "l.lock"
    with file_lock(lock) as held:
        assert held
        with file_lock(lock, blocking=False) as second:
            assert not second
    with file_lock(lock, blocking=False) as again:
        assert again
