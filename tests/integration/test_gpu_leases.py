"""``--gpu N`` on a real runc container, with a stand-in /dev: exactly N leased devices.

No GPU on this machine: the devices are empty files named like ``/dev/nvidia<N>``, and no
NVIDIA hook is installed, so the container sees only ``NVIDIA_VISIBLE_DEVICES``, which is
what the hook (runc) and nvproxy (gVisor) read. Before leases it was ``all``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpool.api import Sandpool
from sandpool.config import LoadedConfig
from sandpool.errors import ContainerStartFailed
from tests.integration.conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.runc]
SHOW = ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"]


@pytest.fixture
def gpu_sp(sandbox: Sandbox, tmp_path: Path) -> Iterator[Sandpool]:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl"):
        (dev / name).touch()
    config = LoadedConfig.load([str(sandbox.config_file)], {}).resolved
    with Sandpool(config, gpu_dev_dir=dev) as sp:
        yield sp
    assert sandbox.leftovers() == []


def test_exactly_the_leased_gpus_and_never_twice(gpu_sp: Sandpool) -> None:
    one = gpu_sp.run("performance", SHOW, image="builtin:busybox", gpus=1)
    assert one.stdout == b"0\n"
    read_end, write_end = os.pipe()
    holder = threading.Thread(target=gpu_sp.run, args=(
        "performance", ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES; sleep 3"]),
        kwargs={"image": "builtin:busybox", "gpus": 1, "stdout": write_end,
                "capture": False})  # fmt: skip
    holder.start()
    try:
        with os.fdopen(read_end) as lines:
            assert lines.readline() == "0\n"  # the holder runs, with GPU 0 leased
            other = gpu_sp.run("performance", SHOW, image="builtin:busybox", gpus=1)
            assert other.stdout == b"1\n"  # not the holder's 0
            with pytest.raises(ContainerStartFailed, match="only 1 of this host's 2 GPU"):
                gpu_sp.run("performance", SHOW, image="builtin:busybox", gpus=2)
    finally:
        holder.join()
        os.close(write_end)
    both = gpu_sp.run("performance", SHOW, image="builtin:busybox", gpus=2)
    assert both.stdout == b"0,1\n"  # released at the end of each run


def test_more_gpus_than_the_host_has_is_a_clear_error(gpu_sp: Sandpool) -> None:
    with pytest.raises(ContainerStartFailed, match="--gpu 3: this host has 2 GPU"):
        gpu_sp.run("performance", SHOW, image="builtin:busybox", gpus=3)
