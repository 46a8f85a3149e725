"""Concurrent first pulls of one image unpack it once, in threads and in separate processes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

import sandpool.images.fetch as fetch
from sandpool.images import ImageStore


def test_threads_unpack_once(tmp_path: Path, factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = factory.archive(factory.layout("t", {"f": "1"}), "v1", "docker-archive")
    calls: list[str] = []
    real = fetch.unpack_rootfs

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append("unpack")
        real(*args, **kwargs)

    monkeypatch.setattr(fetch, "unpack_rootfs", counting)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def pull() -> None:
        barrier.wait()
        results.append(ImageStore(tmp_path / "state").get(f"docker-archive:{archive}").digest)

    threads = [threading.Thread(target=pull) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 6 and len(set(results)) == 1
    assert calls == ["unpack"]


def _pull_in_child(state: str, reference: str, queue: Any) -> None:
    queue.put(str(ImageStore(Path(state)).get(reference).rootfs))


def test_processes_unpack_once(tmp_path: Path, factory: Any) -> None:
    reference = f"oci-archive:{factory.archive(factory.layout('p', {}), 'v1', 'oci-archive')}"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [
        context.Process(target=_pull_in_child, args=(str(tmp_path / "state"), reference, queue))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    rootfs = {queue.get(timeout=120) for _ in children}
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    root = tmp_path / "state" / "images"
    assert len(rootfs) == 1
    assert len(list((root / "sha256").iterdir())) == 1
    assert list((root / "tmp").iterdir()) == []
