"""Configuration: Beta9's worker-pool schema, its sources, validation, resolution and migration."""

from sandpool.config.loader import CONFIG_ENV_VAR, LoadedConfig
from sandpool.config.resolved import ResolvedConfig, ResolvedPool

__all__ = ["CONFIG_ENV_VAR", "LoadedConfig", "ResolvedConfig", "ResolvedPool"]
