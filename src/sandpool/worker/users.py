"""The image's ``User`` ("1000", "1000:1000", "nobody", "app:staff") as numeric uid and gid."""

from __future__ import annotations

from pathlib import Path

from sandpool.errors import InvalidImage

__all__ = ["resolve_user"]


def _lookup(rootfs: Path, table: str, name: str) -> tuple[int, int] | None:
    try:
        lines = (rootfs / "etc" / table).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            # passwd: name:x:uid:gid:…; group: name:x:gid:members (its 4th field is no id).
            return int(fields[2]), int(fields[3] if table == "passwd" else fields[2])
    return None


def _one(rootfs: Path, table: str, value: str) -> tuple[int, int]:
    if value.isdigit():
        return int(value), int(value)
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
        gid = _one(rootfs, "group", group)[0] if not group.isdigit() else int(group)
    return uid, gid
