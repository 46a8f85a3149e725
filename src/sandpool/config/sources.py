"""Where configuration comes from: the embedded default, YAML files and environment variables.

Each source yields a raw document (nested dicts) plus ``Origins``: for each key path, where its
value came from ("file.yaml line 7", "environment variable SANDPOOL_..."), so that validation
errors can name the place to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sandpool.config.models import PoolConfig, SandpoolConfig, WorkerConfig, model_in
from sandpool.config.yaml_tree import (
    KeyPath,
    Origins,
    decode,
    parse_document,
    parse_value,
    read_config_bytes,
)
from sandpool.errors import ConfigFileError, ConfigValidationError

__all__ = [
    "ENV_PREFIX",
    "KeyPath",
    "Origins",
    "apply_env",
    "embedded_default",
    "merge",
    "parse_yaml",
    "read_file",
]

ENV_PREFIX = "SANDPOOL_"
# SANDPOOL_WORKER_… names that are not configuration keys: the worker token (a secret, never
# part of the configuration a Job's environment or `config show` carries).
NOT_KEYS = frozenset({"SANDPOOL_WORKER_TOKEN"})


def parse_yaml(text: str, where: str) -> tuple[dict[str, Any], Origins]:
    """Parse one YAML document (bounded, see ``yaml_tree``); errors name the line."""
    return parse_document(text, where)


def read_file(path: str | Path) -> tuple[dict[str, Any], Origins]:
    """Read a configuration file: a regular UTF-8 file of at most 1 MiB, named in any error."""
    return parse_document(decode(read_config_bytes(path), str(path)), str(path))


def embedded_default() -> tuple[dict[str, Any], Origins]:
    """The built-in configuration: a gVisor pool ``default`` and a runc pool ``performance``."""
    text = resources.files("sandpool.config").joinpath("default.yaml").read_text(encoding="utf-8")
    return parse_yaml(text, "<embedded default config>")


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# ---- environment -------------------------------------------------------------------------


def _is_pool_map(model: type[BaseModel], field_name: str) -> bool:
    return model is WorkerConfig and field_name == "pools"


def _fields_by_env_name(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """ENVNAME -> (python field name, YAML key) for every field of a model."""
    out = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        out[key.upper()] = (name, key)
    return out


def _walk(model: type[BaseModel], parts: list[str], doc: Mapping[str, Any]) -> KeyPath | None:
    """Turn upper-case env name parts into a YAML key path under ``model``, or None."""
    if not parts:
        return None
    fields = _fields_by_env_name(model)
    for width in range(len(parts), 0, -1):
        hit = fields.get("_".join(parts[:width]))
        if hit is None:
            continue
        name, key = hit
        rest = parts[width:]
        if not rest:
            return (key,)
        sub_doc = doc.get(key) if isinstance(doc.get(key), Mapping) else {}
        if _is_pool_map(model, name):
            tail = _walk_pools(rest, sub_doc or {})
        else:
            sub = model_in(model.model_fields[name].annotation)
            tail = _walk(sub, rest, sub_doc or {}) if sub else None
        if tail is not None:
            return (key, *tail)
    return None


def _walk_pools(parts: list[str], pools: Mapping[str, Any]) -> KeyPath | None:
    """Split ``parts`` into a pool name and a key path inside PoolConfig."""
    existing = {name.upper().replace("-", "_"): name for name in pools}
    for cut in range(1, len(parts)):
        env_name = "_".join(parts[:cut])
        name = existing.get(env_name, env_name.lower())
        pool_doc = pools.get(name) if isinstance(pools.get(name), Mapping) else {}
        tail = _walk(PoolConfig, parts[cut:], pool_doc or {})
        if tail is not None:
            return (name, *tail)
    return None


def _parse_env_value(raw: str, var: str) -> Any:
    """An env value is read as a YAML scalar or flow collection (``[a, b]``, ``4``, ``true``)."""
    try:
        value = parse_value(raw, f"environment variable {var}")
    except ConfigFileError as exc:
        raise ConfigValidationError([exc.message]) from exc
    return raw if value is None and raw != "" else value


def _set_path(doc: dict[str, Any], path: KeyPath, value: Any) -> None:
    node = doc
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def apply_env(
    doc: dict[str, Any], origins: Origins, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Overlay ``SANDPOOL_WORKER_…`` and ``SANDPOOL_GATEWAY_…`` variables on ``doc``;
    unknown names are errors."""
    environ = os.environ if environ is None else environ
    problems = []
    out = merge({}, doc)
    for var in sorted(environ):
        if not var.startswith((ENV_PREFIX + "WORKER_", ENV_PREFIX + "GATEWAY_")) or var in NOT_KEYS:
            continue
        path = _walk(SandpoolConfig, var[len(ENV_PREFIX) :].split("_"), out)
        if path is None:
            problems.append(f"{var}: no configuration key has this name")
            continue
        _set_path(out, path, _parse_env_value(environ[var], var))
        origins[path] = f"environment variable {var}"
    if problems:
        raise ConfigValidationError(problems)
    return out
