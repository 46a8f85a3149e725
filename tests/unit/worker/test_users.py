"""``resolve_user``: an image's ``User`` as numeric ids, names looked up in the image."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpool.errors import InvalidImage
from sandpool.worker.users import resolve_user


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1001:App:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nstaff:x:50:app\napp:x:1001:\n")
    return tmp_path


@pytest.mark.parametrize(
    ("user", "ids"),
    [("", (0, 0)), ("1000", (1000, 1000)), ("1000:50", (1000, 50)), ("app", (1000, 1001)),
     ("nobody", (65534, 65534)), ("app:staff", (1000, 50)), ("1234:staff", (1234, 50)),
     ("app:7", (1000, 7))],
)  # fmt: skip
def test_resolved(rootfs: Path, user: str, ids: tuple[int, int]) -> None:
    assert resolve_user(rootfs, user) == ids


def test_unknown_user_is_an_invalid_image(rootfs: Path) -> None:
    with pytest.raises(InvalidImage, match=r"'ghost' is not in the image's /etc/passwd"):
        resolve_user(rootfs, "ghost")


def test_unknown_group_is_an_invalid_image(rootfs: Path) -> None:
    with pytest.raises(InvalidImage, match=r"'wheel' is not in the image's /etc/group"):
        resolve_user(rootfs, "app:wheel")


def test_a_name_in_an_image_without_passwd(tmp_path: Path) -> None:
    with pytest.raises(InvalidImage):
        resolve_user(tmp_path, "app")
    assert resolve_user(tmp_path, "42") == (42, 42)
