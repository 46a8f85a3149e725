"""The image's ``User`` ("1000", "1000:1000", "nobody", "app:staff") as numeric uid and gid.

Names are looked up in the image's ``/etc/passwd`` and ``/etc/group``, read strictly inside
the image's root (``worker.image_files``); a malformed line is an InvalidImage naming it.
"""

from __future__ import annotations

from pathlib import Path

from sandpool.errors import InvalidImage
from sandpool.worker.image_files import read_image_file

__all__ = ["resolve_user"]

_MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "no id"


def _number(text: str, table: str, line_no: int, what: str) -> int:
    if not text.isdigit() or int(text) > _MAX_ID:
        raise InvalidImage(f"the image's /etc/{table} line {line_no}: {what} {text!r} is not a "
                           f"number from 0 to {_MAX_ID}")  # fmt: skip
    return int(text)


def _lookup(rootfs: Path, table: str, name: str) -> tuple[int, int] | None:
    data = read_image_file(rootfs, f"/etc/{table}")
    if data is None:
        return None
    for line_no, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            # passwd: name:x:uid:gid:…; group: name:x:gid:members (its 4th field is no id).
            first = _number(fields[2], table, line_no, "uid" if table == "passwd" else "gid")
            if table == "group":
                return first, first
            return first, _number(fields[3], table, line_no, "gid")
    return None


def _one(rootfs: Path, table: str, value: str) -> tuple[int, int]:
    if value.isdigit():
        number = _number(value, table, 0, "id")
        return number, number
    found = _lookup(rootfs, table, value)
    if found is None:
        raise InvalidImage(f"user or group '{value}' is not in the image's /etc/{table}")
    return found


def resolve_user(rootfs: Path, user: str) -> tuple[int, int]:
    """uid and gid for ``user``; root when unset."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    uid, gid = _one(rootfs, "passwd", name)
    if group:
        gid = _one(rootfs, "group", group)[0]
    return uid, gid
