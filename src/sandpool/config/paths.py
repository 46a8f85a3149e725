"""Which configuration files to read (no YAML or validation imports: the run path uses it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CONFIG_ENV_VAR", "config_paths"]

CONFIG_ENV_VAR = "SANDPOOL_CONFIG"


def config_paths(paths: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The files to read: the given ones, else ``$SANDPOOL_CONFIG``, else none (embedded)."""
    if paths:
        return list(paths)
    from_env = environ.get(CONFIG_ENV_VAR, "")
    return [from_env] if from_env else []
