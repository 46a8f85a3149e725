"""GPU leases: exactly N devices, never one leased elsewhere unless the pool shares them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandpool.errors import ContainerStartFailed
from sandpool.worker.gpus import acquire_gpus, host_gpus


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    """A stand-in /dev with three GPUs and the control nodes that are not GPUs."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm", "nvidia-caps"):
        (dev / name).touch()
    return dev


def test_only_numbered_nodes_are_gpus(dev: Path, tmp_path: Path) -> None:
    assert host_gpus(dev) == [0, 1, 2]
    assert host_gpus(tmp_path / "missing") == []


def test_exactly_n_distinct_devices(dev: Path, tmp_path: Path) -> None:
    first = acquire_gpus(2, tmp_path, dev_dir=dev)
    second = acquire_gpus(1, tmp_path, dev_dir=dev)
    assert (first.visible_devices, second.visible_devices) == ("0,1", "2")
    with pytest.raises(ContainerStartFailed, match="only 0 of this host's 3 GPU"):
        acquire_gpus(1, tmp_path, dev_dir=dev)
    first.release()
    assert acquire_gpus(2, tmp_path, dev_dir=dev).visible_devices == "0,1"


def test_more_than_the_host_has_is_refused(dev: Path, tmp_path: Path) -> None:
    with pytest.raises(ContainerStartFailed, match="--gpu 4: this host has 3 GPU"):
        acquire_gpus(4, tmp_path, dev_dir=dev)
    assert acquire_gpus(0, tmp_path, dev_dir=dev).visible_devices == ""


def test_sharing_pools_share_but_exclude_exclusive_ones(dev: Path, tmp_path: Path) -> None:
    a = acquire_gpus(3, tmp_path, sharing=True, dev_dir=dev)
    b = acquire_gpus(3, tmp_path, sharing=True, dev_dir=dev)
    assert a.visible_devices == b.visible_devices == "0,1,2"
    with pytest.raises(ContainerStartFailed):
        acquire_gpus(1, tmp_path, dev_dir=dev)


def test_leases_count_across_processes_and_die_with_them(dev: Path, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from sandpool.worker.gpus import acquire_gpus;"
         f"lease = acquire_gpus(2, pathlib.Path({str(tmp_path)!r}), dev_dir=pathlib.Path("
         f"{str(dev)!r})); print(lease.visible_devices, flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "0,1\n"
    assert acquire_gpus(1, tmp_path, dev_dir=dev).visible_devices == "2"
    holder.kill()
    holder.wait()
    assert acquire_gpus(2, tmp_path, dev_dir=dev).visible_devices == "0,1"
