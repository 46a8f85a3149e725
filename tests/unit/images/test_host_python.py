"""``host_python``: the default image takes whichever Python 3 this Debian has."""

from __future__ import annotations

import os
from pathlib import Path

from sandpool.images.default_image import host_python


def test_the_one_python3_names(tmp_path: Path) -> None:
    for name in ("python3.11", "python3.13"):
        (tmp_path / name).touch()
    os.symlink("python3.13", tmp_path / "python3")
    assert host_python(tmp_path) == tmp_path / "python3.13"


def test_else_the_newest_minor(tmp_path: Path) -> None:
    for name in ("python3.9", "python3.12", "python3.12-config", "python3.10"):
        (tmp_path / name).touch()
    assert host_python(tmp_path) == tmp_path / "python3.12"


def test_none_is_named_as_missing(tmp_path: Path) -> None:
    assert host_python(tmp_path) == tmp_path / "python3.11"
    assert host_python(tmp_path / "absent") == tmp_path / "absent" / "python3.11"
