"""Validation: pydantic's findings rewritten as one flat list of messages that name the key
path, the bad value, where it came from and the fix; plus the warnings for legacy meanings."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sandpool.config.models import (
    ContainerRuntimeName,
    PoolConfig,
    SandpoolConfig,
    WorkerConfig,
    model_in,
)
from sandpool.config.sources import KeyPath, Origins
from sandpool.errors import ConfigValidationError

__all__ = ["legacy_warnings", "validate"]

# Old key name -> new key name (Beta9 renamed these; `config migrate` rewrites them).
RENAMED_KEYS = {"runtimeConfig": "containerRuntimeConfig"}
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
}


def _dotted(path: KeyPath) -> str:
    return ".".join(path) if path else "(top level)"


def _where(path: KeyPath, origins: Origins) -> str:
    """The origin of the longest prefix of ``path`` that has one."""
    for end in range(len(path), 0, -1):
        origin = origins.get(path[:end])
        if origin:
            return f" [{origin}]"
    return ""


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The model class whose fields live at ``path`` (pool names are stepped over)."""
    model: type[BaseModel] | None = SandpoolConfig
    keys = list(path)
    while keys and model is not None:
        by_alias = {(f.alias or n): (n, f) for n, f in model.model_fields.items()}
        hit = by_alias.get(keys.pop(0))
        if hit is None:
            return None
        if model is WorkerConfig and hit[0] == "pools":
            model = PoolConfig if keys and keys.pop(0) is not None else None
        else:
            model = model_in(hit[1].annotation)
    return model


def _allowed_keys(path: KeyPath) -> list[str]:
    model = _model_at(path)
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _unknown_key(path: KeyPath) -> str:
    parent, key = path[:-1], path[-1]
    if key in RENAMED_KEYS:
        new = RENAMED_KEYS[key]
        return (
            f"{_dotted(path)}: '{key}' was renamed to '{new}'; rename the key "
            f"(`sandpool config migrate FILE --write` does it for you)"
        )
    allowed = _allowed_keys(parent)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{_dotted(path)}: unknown key '{key}'{hint}; allowed keys here: {', '.join(allowed)}"


def _bad_enum(path: KeyPath, value: Any, expected: str) -> str:
    allowed = [a.strip(" '") for a in expected.replace(" or ", ",").split(",") if a.strip(" '")]
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{_dotted(path)}: {value!r} is not allowed{hint}; allowed values: {', '.join(allowed)}"


def _message(err: ErrorDetails) -> tuple[KeyPath, str]:
    path = tuple(str(p) for p in err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return path, _unknown_key(path)
    if kind in ("enum", "literal_error"):
        return path, _bad_enum(path, value, str(err.get("ctx", {}).get("expected", "")))
    if kind in _TYPE_WORDS:
        shown = type(value).__name__ if isinstance(value, dict | list) else repr(value)
        return path, f"{_dotted(path)}: expected {_TYPE_WORDS[kind]}, got {shown}"
    message = str(err["msg"]).removeprefix("Value error, ")  # our own validators' text
    return path, f"{_dotted(path)}: {message} (got {value!r})"


def validate(doc: dict[str, Any], origins: Origins) -> SandpoolConfig:
    """Build the typed config, or raise ConfigValidationError listing every problem."""
    try:
        return SandpoolConfig.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            path, text = _message(err)
            problems.append(text + _where(path, origins))
        raise ConfigValidationError(problems) from exc


def legacy_warnings(config: SandpoolConfig) -> list[str]:
    """Warnings for configs that are valid but almost surely mean something else (SPEC §1)."""
    warnings = []
    legacy = {e.value for e in ContainerRuntimeName}
    for name, pool in config.worker.pools.items():
        if pool.runtime in legacy and pool.container_runtime is None:
            warnings.append(
                f"worker.pools.{name}.runtime: '{pool.runtime}' is the pod RuntimeClass "
                f"(pod.spec.runtimeClassName), not the runtime of user containers; "
                f"Kubernetes will reject the worker pods with "
                f'RuntimeClass "{pool.runtime}" not found unless the cluster has one. '
                f"If you meant the container runtime, write `containerRuntime: {pool.runtime}` "
                f"instead (`sandpool config migrate FILE --write` does it)"
            )
    return warnings
