"""The template filters: times, ages, sizes and durations as people read them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jinja2 import Environment

__all__ = ["add_filters"]


def when(ts: float | None) -> str:
    """``2026-12-02 02:13:15 UTC`` ('' for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``."""
    if ts is None:
        return ""
    return f"{seconds(time.time() - ts)} ago"


def seconds(value: float | None) -> str:
    """A duration: ``850 ms``, ``12 s``, ``5 min``, ``3 h``."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.0f} h"


def size(value: int | None) -> str:
    """Bytes as ``512 KiB``, ``1.5 GiB``."""
    if value is None:
        return "n/a"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def add_filters(env: Environment) -> None:
    """Register the filters above."""
    env.filters.update(when=when, ago=ago, seconds=seconds, size=size)
