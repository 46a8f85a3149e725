"""Loading: pick the sources, merge them in their fixed order, validate, resolve.

Precedence, lowest to highest:
  1. built-in defaults (the models' field defaults);
  2. the YAML file(s): the ``-c`` files in the order given, else ``$SANDPOOL_CONFIG``, else the
     embedded default config (a gVisor pool ``default`` and a runc pool ``performance``);
  3. environment variables ``SANDPOOL_WORKER_…`` (key path in upper case, ``_`` between parts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandpool.config.models import SandpoolConfig
from sandpool.config.paths import CONFIG_ENV_VAR, config_paths
from sandpool.config.resolved import ResolvedConfig, resolve
from sandpool.config.sources import Origins, apply_env, embedded_default, merge, read_file
from sandpool.config.validation import legacy_warnings, validate

__all__ = ["CONFIG_ENV_VAR", "LoadedConfig", "config_paths"]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration with its resolved view and the warnings it drew."""

    model: SandpoolConfig
    resolved: ResolvedConfig
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def from_document(
        cls, doc: dict[str, Any], origins: Origins, sources: list[str]
    ) -> LoadedConfig:
        """Validate and resolve an already merged raw document."""
        model = validate(doc, origins)
        return cls(model, resolve(model), legacy_warnings(model), sources)

    @classmethod
    def load(
        cls, paths: Sequence[str] = (), environ: Mapping[str, str] | None = None
    ) -> LoadedConfig:
        """Read every source in precedence order (see the module docstring)."""
        environ = os.environ if environ is None else environ
        files = config_paths(paths, environ)
        doc: dict[str, Any] = {}
        origins: Origins = {}
        if not files:
            doc, origins = embedded_default()
        for path in files:
            file_doc, file_origins = read_file(path)
            doc = merge(doc, file_doc)
            origins.update(file_origins)
        doc = apply_env(doc, origins, environ)
        return cls.from_document(doc, origins, files or ["<embedded default>"])
