"""Configuration: Beta9's worker-pool schema, its sources, validation, resolution and migration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandpool.config.paths import CONFIG_ENV_VAR
from sandpool.config.resolved import ResolvedConfig, ResolvedPool

if TYPE_CHECKING:
    from sandpool.config.loader import LoadedConfig

__all__ = ["CONFIG_ENV_VAR", "LoadedConfig", "ResolvedConfig", "ResolvedPool"]


def __getattr__(name: str) -> Any:
    """``LoadedConfig`` is imported on first use: it pulls in pydantic and ruamel.yaml, which
    the run path (``config.cache``, ``config.resolved``) does without."""
    if name == "LoadedConfig":
        from sandpool.config.loader import LoadedConfig

        return LoadedConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
