"""Local sources (OCI/docker archives, OCI layouts, builtins) pulled, unpacked and cached."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sandpool.errors import ImageError
from sandpool.images import ImageStore

CONFIG = (
    "--config.env=GREETING=hello",
    "--config.workingdir=/srv",
    "--config.user=1000:1000",
    "--config.entrypoint=/bin/sh",
    "--config.entrypoint=-c",
    "--config.cmd=echo $GREETING",
)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    """A cache of its own under tmp_path."""
    return ImageStore(tmp_path / "state")


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "oci"])
def test_each_source_unpacks_with_its_config(store: ImageStore, factory: Any, kind: str) -> None:
    layout = factory.layout("cfg", {"srv/hello.txt": "hi\n"}, *CONFIG)
    source = (
        f"oci:{layout}:v1" if kind == "oci" else f"{kind}:{factory.archive(layout, 'v1', kind)}"
    )
    image = store.get(source)
    assert image.reference == source
    assert image.digest.startswith("sha256:")
    assert (image.rootfs / "srv" / "hello.txt").read_text() == "hi\n"
    assert os.access(image.rootfs / "bin" / "busybox", os.X_OK)
    assert image.env == ("PATH=/bin", "GREETING=hello")
    assert (image.working_dir, image.user) == ("/srv", "1000:1000")
    assert image.entrypoint == ("/bin/sh", "-c")
    assert image.cmd == ("echo $GREETING",)
    assert image.size_bytes > 500_000  # busybox-static is about 2 MB
    assert image.rootfs.is_relative_to(store.root / "sha256")


def test_same_image_two_references_one_rootfs(store: ImageStore, factory: Any) -> None:
    layout = factory.layout("same", {"a": "1"})
    by_layout = store.get(f"oci:{layout}:v1")
    by_archive = store.get(f"oci-archive:{factory.archive(layout, 'v1', 'oci-archive')}")
    assert by_layout.digest == by_archive.digest
    assert by_layout.rootfs == by_archive.rootfs
    assert len(list((store.root / "sha256").iterdir())) == 1
    assert len(store.list()) == 2


def test_cache_hit_is_fast_and_runs_nothing(
    store: ImageStore, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = factory.archive(factory.layout("hit", {}), "v1", "oci-archive")
    first = store.get(f"oci-archive:{archive}")

    def _forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("cache hit started a subprocess")

    monkeypatch.setattr(subprocess, "Popen", _forbidden)
    fresh = ImageStore(store.root.parent)  # another process's view: index read from disk
    start = time.perf_counter()
    for _ in range(100):
        assert fresh.get(f"oci-archive:{archive}") == first
    assert (time.perf_counter() - start) / 100 < 0.005


def test_rebuilt_archive_is_pulled_again(store: ImageStore, factory: Any) -> None:
    archive = factory.archive(factory.layout("v1", {"version": "1"}), "v1", "oci-archive")
    first = store.get(f"oci-archive:{archive}")
    replacement = factory.archive(factory.layout("v2", {"version": "2"}), "v1", "oci-archive")
    os.replace(replacement, archive)
    second = store.get(f"oci-archive:{archive}")
    assert second.digest != first.digest
    assert (second.rootfs / "version").read_text() == "2"


def test_layer_deleting_a_file_in_an_oci_layout(store: ImageStore, factory: Any) -> None:
    layout = factory.layout("tags", {"f": "x"})
    factory.delete_in_new_layer(layout, "v1", "f")  # v1 now lacks f
    assert not (store.get(f"oci:{layout}:v1").rootfs / "f").exists()


def test_builtin_busybox(store: ImageStore) -> None:
    image = store.get("builtin:busybox")
    assert (image.rootfs / "bin" / "sh").is_symlink()
    assert image.cmd == ("/bin/sh",)
    assert [i.reference for i in store.list()] == ["builtin:busybox"]


def test_remove_and_prune_delete_rootfs(store: ImageStore, factory: Any) -> None:
    layout = factory.layout("rm", {})
    image = store.get(f"oci:{layout}:v1")
    store.remove(f"oci:{layout}:v1")
    assert not image.rootfs.exists()
    store.get(f"oci:{layout}:v1")
    assert [i.digest for i in store.prune(everything=True)] == [image.digest]
    assert list((store.root / "sha256").iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_image_under_a_container_overlay_is_kept(
    store: ImageStore, factory: Any, tmp_path: Path
) -> None:
    image = store.get(f"oci:{factory.layout('busy', {})}:v1")
    dirs = {n: tmp_path / n for n in ("upper", "work", "merged")}
    for path in dirs.values():
        path.mkdir()
    options = f"lowerdir={image.rootfs},upperdir={dirs['upper']},workdir={dirs['work']}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, dirs["merged"]], check=True)
    try:
        with pytest.raises(ImageError, match="in use"):
            store.remove(image.digest)
        assert store.prune(everything=True) == []
        assert image.rootfs.is_dir() and store.list() != []
    finally:
        subprocess.run(["umount", dirs["merged"]], check=True)
    store.remove(image.digest)
    assert not image.rootfs.exists()
