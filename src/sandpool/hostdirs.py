"""Where sandpool keeps this host's runtime files (config cache, the ``serve`` socket).

Standard library only: the thin ``sandpool run`` client imports it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # see warm.protocol: the thin client avoids importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["runtime_dir"]


def runtime_dir(environ: Mapping[str, str]) -> str | None:
    """``/run/sandpool`` for root, ``$XDG_RUNTIME_DIR/sandpool`` otherwise, None without one."""
    if os.geteuid() == 0:
        return "/run/sandpool"
    base = environ.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "sandpool") if base else None
