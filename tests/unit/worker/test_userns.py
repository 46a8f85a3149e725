"""The user-namespace part of a runc container's spec, and when it is off."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pytest

from sandpool.errors import ContainerStartFailed
from sandpool.worker import userns
from sandpool.worker.idmap import kernel_too_old
from sandpool.worker.uidrange import UidRange
from sandpool.worker.userns import ContainerUserns, closed_ancestor


def test_the_spec_gets_a_user_namespace_mapping_the_range(tmp_path: Path) -> None:
    userns = ContainerUserns(tmp_path, tmp_path / "sp-x", UidRange(3, 296608))
    spec = userns.apply({"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}})
    linux = spec["linux"]
    assert {"type": "user"} in linux["namespaces"]
    expected = [{"containerID": 0, "hostID": 296608, "size": 65536}]
    assert linux["uidMappings"] == expected and linux["gidMappings"] == expected


def test_a_state_dir_under_a_closed_directory_is_named(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "state").mkdir(parents=True)
    closed.chmod(0o700)
    reason = closed_ancestor(closed / "state")
    assert reason is not None and f"chmod o+x {closed}," in reason
    closed.chmod(0o711)
    assert f"chmod o+x {closed}," not in (closed_ancestor(closed / "state") or "")


def test_kernels_before_5_19_have_no_idmapped_overlay_layers() -> None:
    assert "5.19 or later needed" in (kernel_too_old("5.15.0-91-generic") or "")
    assert kernel_too_old("5.19.0") is None and kernel_too_old("6.18.44-fc-v1045") is None


def test_a_refused_idmapped_overlay_is_one_clear_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Linux 6.1 did with a detached layer: EINVAL from the overlay mount. The error names
    the kernel and the setting, exits 125, and is not an OSError traceback."""

    def refuse(lower: Path, container_dir: Path) -> Path:
        raise OSError(errno.EINVAL, "mount overlay at rootfs: Invalid argument")

    monkeypatch.setattr(userns, "attached_idmap", lambda *args: contextlib.nullcontext(tmp_path))
    monkeypatch.setattr(userns, "mount_overlay", refuse)
    ids = ContainerUserns(tmp_path, tmp_path / "sp-x", UidRange(3, 296608))
    with pytest.raises(ContainerStartFailed) as caught:
        ids.mount_rootfs(tmp_path / "image")
    assert caught.value.exit_code == 125
    assert f"Linux {os.uname().release}: mount overlay at rootfs: Invalid" in caught.value.message
    assert "worker.userNamespaceBase: 0" in str(caught.value)
