"""Quantities a configuration or a flag may hold, and their bounds: one place for both.

Pure functions raising ``ValueError`` with a message that says what was expected (never the
bad value at length), so that the config schema and the CLI's flags accept exactly the same
things. Imports nothing heavy: ``sandpool run`` uses it before any YAML or pydantic.
"""

from __future__ import annotations

import math
import re

from sandpool.sizes import MEMORY_MAX, parse_size

__all__ = [
    "CPU_RANGE",
    "GPU_RANGE",
    "MEMORY_MAX",
    "PIDS_RANGE",
    "TIMEOUT_RANGE",
    "check_absolute_path",
    "check_binary",
    "check_kube_quantity",
    "check_number",
    "parse_size",
    "range_text",
]

# (lowest, highest) accepted, both inclusive.
CPU_RANGE = (0.01, 1024.0)  # cores; the CFS quota is cpu * 100 ms
TIMEOUT_RANGE = (0.001, 31_536_000.0)  # seconds: 1 ms to 365 days
PIDS_RANGE = (1, 4_194_304)  # the kernel's PID_MAX_LIMIT
GPU_RANGE = (0, 1024)
PATH_MAX = 4096

# A Kubernetes resource quantity (resource.Quantity's canonical forms), non-negative.
_KUBE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")


def check_number(value: float, bounds: tuple[float, float], unit: str) -> float:
    """``value`` if it is a finite number within ``bounds``; else ValueError saying the range."""
    low, high = bounds
    if isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"expected {range_text(bounds, unit)}")
    return value


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def range_text(bounds: tuple[float, float], unit: str, *, whole: bool = False) -> str:
    """``a number of cores from 0.01 to 1024``: what a bounded value must be, in words."""
    kind = "a whole number" if whole else "a number"
    of_unit = f" of {unit}" if unit else ""
    return f"{kind}{of_unit} from {_plain(bounds[0])} to {_plain(bounds[1])}"


def _check_path_text(text: str) -> None:
    if not text or "\0" in text or len(text) > PATH_MAX:
        raise ValueError(f"expected a path of 1 to {PATH_MAX} characters without NUL")


def check_absolute_path(text: str) -> str:
    """An absolute, normal path other than ``/`` (no ``.``/``..`` parts, no NUL)."""
    _check_path_text(text)
    parts = text.split("/")
    if not text.startswith("/") or any(p in (".", "..") for p in parts) or text.strip("/") == "":
        raise ValueError("expected an absolute path below / (e.g. /var/lib/sandpool), "
                         "without '.' or '..' parts")  # fmt: skip
    return text


def check_binary(text: str) -> str:
    """A program: a bare name looked up on PATH, or an absolute path."""
    _check_path_text(text)
    if "/" in text:
        return check_absolute_path(text)
    return text


def check_kube_quantity(text: str) -> str:
    """A non-negative Kubernetes quantity (``1000m``, ``1Gi``, ``2``)."""
    if len(text) > 64 or _KUBE.fullmatch(text) is None:
        raise ValueError("expected a Kubernetes quantity such as 1000m, 2, 1Gi or 512Mi")
    return text
