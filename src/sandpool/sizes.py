"""Sizes as people write them (``512Mi``, ``1G``, ``300m``, ``1048576``), read as bytes.

Used by the configuration (which imports nothing of the worker) and by the worker alike.
"""

from __future__ import annotations

__all__ = ["MIN_DISK", "format_size", "parse_size"]

MIN_DISK = 1 << 20  # the smallest writable layer: ext4 needs some room for its own metadata

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, minimum: int = 1) -> int:
    """``512Mi``, ``1G``, ``300m`` (mebibytes), ``1048576`` -> bytes; at least ``minimum``."""
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = raw[-1] if raw and raw[-1] in _UNITS else ""
    number = raw[: len(raw) - len(unit)] if unit else raw
    try:
        value = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise ValueError(
            f"not a size: {text!r} (use e.g. 512Mi, 2G or a number of bytes)"
        ) from None
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    if value < minimum:
        raise ValueError(f"size {text!r} is below the minimum of {format_size(minimum)}")
    return value


def format_size(value: int) -> str:
    """Bytes as the largest whole binary unit (``1Gi``, ``16Mi``, ``1536``)."""
    for suffix, unit in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
