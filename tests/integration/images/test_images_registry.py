"""Pulls from a real registry (Debian's docker-registry) on loopback, whiteouts included."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandpool.errors import ImageNotFound, InvalidImage
from sandpool.images import ImageStore


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    """A cache of its own under tmp_path, quick to give up."""
    return ImageStore(tmp_path / "state", pull_timeout=5)


def test_multi_layer_image_with_whiteouts(store: ImageStore, factory: Any, registry: Any) -> None:
    files = {"data/keep.txt": "keep\n", "data/gone.txt": "gone\n", "olddir/x": "x\n"}
    layout = factory.layout("wh", files, "--config.cmd=/bin/cat")
    factory.delete_in_new_layer(layout, "v1", "data/gone.txt", "olddir", add="data/new.txt")
    reference = registry.push(layout, "v1", "sandpool/whiteout:v1")
    image = store.get(f"docker://{reference}")
    rootfs = image.rootfs
    assert (rootfs / "data" / "keep.txt").read_text() == "keep\n"
    assert (rootfs / "data" / "new.txt").exists()
    assert not (rootfs / "data" / "gone.txt").exists()
    assert not (rootfs / "olddir").exists()
    assert not [p for p in rootfs.rglob("*") if p.name.startswith(".wh.")]
    assert image.cmd == ("/bin/cat",)


def test_bare_reference_means_docker(store: ImageStore, factory: Any, registry: Any) -> None:
    reference = registry.push(factory.layout("bare", {"f": "1"}), "v1", "team/app:2")
    bare = store.get(reference)
    explicit = store.get(f"docker://{reference}")
    assert explicit == replace(bare, reference=f"docker://{reference}")
    assert [i.reference for i in store.list()] == [f"docker://{reference}"]


def test_missing_tag_names_the_reference(store: ImageStore, factory: Any, registry: Any) -> None:
    registry.push(factory.layout("tag", {}), "v1", "team/app:1")
    with pytest.raises(ImageNotFound, match=f"'{registry.host}/team/app:nope' is not in"):
        store.get(f"{registry.host}/team/app:nope")
    with pytest.raises(ImageNotFound, match="not in the registry"):
        store.get(f"{registry.host}/team/other:1")


def test_other_architecture_is_refused(store: ImageStore, factory: Any, registry: Any) -> None:
    layout = factory.layout("arm", {}, "--architecture=s390x")
    reference = registry.push(layout, "v1", "team/s390x:1")
    with pytest.raises(InvalidImage, match=f"'{reference}' is for linux/s390x"):
        store.get(reference)
    assert store.list() == []


def test_refused_connection(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound, match=r"'127\.0\.0\.1:1/a:b' cannot be pulled: .*refused"):
        store.get("127.0.0.1:1/a:b")


def test_registry_that_never_answers_times_out(tmp_path: Path, silent_registry: str) -> None:
    store = ImageStore(tmp_path / "state", pull_timeout=2)  # the wait is the whole test
    start = time.monotonic()
    with pytest.raises(ImageNotFound, match=f"'{silent_registry}/a:b' cannot be pulled"):
        store.get(f"{silent_registry}/a:b")
    assert time.monotonic() - start < 30
    assert list((store.root / "tmp").iterdir()) == []
