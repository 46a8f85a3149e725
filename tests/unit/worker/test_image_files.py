"""``read_image_file``: an image's files are read inside its root, regular and small only."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sandpool.errors import InvalidImage
from sandpool.worker import image_files
from sandpool.worker.image_files import read_image_file
from sandpool.worker.users import resolve_user

PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    return tmp_path / "rootfs"


@pytest.fixture(params=["openat2", "component-walk"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of opening: openat2, and the fallback for kernels without it."""
    if request.param == "component-walk":

        def no_openat2(root_fd: int, relative: str) -> int:
            raise OSError(errno.ENOSYS, "not here")

        monkeypatch.setattr(image_files, "_openat2", no_openat2)
    return str(request.param)


def test_a_plain_file_is_read(rootfs: Path, walk: str) -> None:
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    assert read_image_file(rootfs, "/etc/passwd") == PASSWD.encode()
    assert read_image_file(rootfs, "/etc/group") is None


@pytest.mark.parametrize("target", ["/etc/shadow", "../../../../../etc/shadow"])
def test_a_symlink_never_leaves_the_root(rootfs: Path, walk: str, target: str) -> None:
    """The host's /etc/shadow exists; the image's does not."""
    assert Path("/etc/shadow").exists()
    (rootfs / "etc" / "passwd").symlink_to(target)
    if walk == "openat2":  # resolved as in the container: the image's own /etc/shadow
        assert read_image_file(rootfs, "/etc/passwd") is None
        (rootfs / "etc" / "shadow").write_text(PASSWD)
        assert read_image_file(rootfs, "/etc/passwd") == PASSWD.encode()
    else:  # no openat2: every symlink is refused
        with pytest.raises(InvalidImage, match="/etc/passwd cannot be read"):
            read_image_file(rootfs, "/etc/passwd")


def test_a_symlinked_directory_never_leaves_the_root(rootfs: Path, walk: str) -> None:
    """``etc -> /etc`` points at itself inside the root: a loop, never the host's /etc."""
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to("/etc")
    with pytest.raises(InvalidImage, match="cannot be read"):
        read_image_file(rootfs, "/etc/passwd")


def test_a_device_is_refused(rootfs: Path, walk: str) -> None:
    (rootfs / "etc" / "passwd").symlink_to("/dev/zero")
    (rootfs / "dev").mkdir()
    (rootfs / "dev" / "zero").symlink_to("../../../../../../dev/zero")
    with pytest.raises(InvalidImage):
        read_image_file(rootfs, "/etc/passwd")


def test_a_fifo_is_refused_without_blocking(rootfs: Path, walk: str) -> None:
    os.mkfifo(rootfs / "etc" / "passwd")
    with pytest.raises(InvalidImage, match="/etc/passwd is not a regular file"):
        read_image_file(rootfs, "/etc/passwd")


def test_a_huge_file_is_refused(rootfs: Path, walk: str) -> None:
    (rootfs / "etc" / "passwd").write_bytes(PASSWD.encode() + b"#" * (2 << 20))
    with pytest.raises(InvalidImage, match="larger than 1048576 bytes"):
        read_image_file(rootfs, "/etc/passwd")


@pytest.mark.parametrize(
    ("passwd", "where"),
    [("app:x:abc:1::/:/bin/sh\n", "line 1: uid 'abc'"),
     ("root:x:0:0::/:/bin/sh\napp:x:5:-1::/:/bin/sh\n", "line 2: gid '-1'"),
     ("app:x:99999999999:1::/:/bin/sh\n", "line 1: uid '99999999999'")],
)  # fmt: skip
def test_a_malformed_passwd_names_file_and_line(rootfs: Path, passwd: str, where: str) -> None:
    (rootfs / "etc" / "passwd").write_text(passwd)
    with pytest.raises(InvalidImage, match=f"/etc/passwd {where} is not a number"):
        resolve_user(rootfs, "app")
