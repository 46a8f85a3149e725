"""Sizes as people write them (``512Mi``, ``1G``, ``300m``, ``1048576``), read as bytes.

The one parser of sizes: the configuration (which imports nothing of the worker), the CLI's
flags and the worker all use it, so they accept exactly the same things. Messages say what
was expected, never the bad value at length.
"""

from __future__ import annotations

import re

__all__ = ["MEMORY_MAX", "MIN_DISK", "format_size", "parse_size"]

MIN_DISK = 1 << 20  # the smallest writable layer: ext4 needs some room for its own metadata
MEMORY_MAX = 1 << 50  # 1 PiB

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# 512Mi, 1G, 300m (mebibytes), 1.5gb, 1048576.
_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kmgt]?)i?b?", re.IGNORECASE)
_SIZE_HELP = "a size such as 512Mi, 2G or a number of bytes"


def parse_size(text: str, minimum: int = 1) -> int:
    """``512Mi``, ``1G``, ``300m`` (mebibytes), ``1048576`` -> bytes, from ``minimum`` (at
    least 1 byte) to 1024Ti; ValueError saying what was expected otherwise."""
    match = _SIZE.fullmatch(text.strip()) if len(text) < 64 else None
    if match is None:
        raise ValueError(f"expected {_SIZE_HELP}")
    value = int(float(match["number"]) * _UNITS[match["unit"].lower()])
    if not 0 < value <= MEMORY_MAX:
        raise ValueError(f"expected {_SIZE_HELP}, more than 0 and at most 1024Ti")
    if value < minimum:
        raise ValueError(f"expected a size of at least {format_size(minimum)}")
    return value


def format_size(value: int) -> str:
    """Bytes as the largest whole binary unit (``1Gi``, ``16Mi``, ``1536``)."""
    for suffix, unit in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
