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
from sandpool.config.yaml_tree import KeyPath, Origins, is_plain_name, kind_of
from sandpool.errors import ConfigValidationError

__all__ = ["legacy_warnings", "validate"]

MAX_PROBLEMS = 20  # listed; the rest are counted
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


_RANGE_WORDS = {
    "greater_than_equal": ("of at least", "ge"),
    "less_than_equal": ("of at most", "le"),
    "greater_than": ("above", "gt"),
    "less_than": ("below", "lt"),
}


def _dotted(path: KeyPath) -> str:
    """The key path; a key that is not a plain name is not repeated (it may be any text)."""
    if path and path[-1] == "[key]":  # the key itself is the problem: name its parent
        path = path[:-2]
    shown = [p if is_plain_name(p) else "<key>" for p in path]
    return ".".join(shown) if path else "(top level)"


def _shown(value: Any) -> str:
    """A bad value as a message may show it: short scalars as they are, others by kind."""
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, str) and len(value) <= 40 and value.isprintable():
        return repr(value)
    return kind_of(value)


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
    if not is_plain_name(key):
        listed = ", ".join(allowed)
        return f"{_dotted(path)}: not a key of this section; allowed keys here: {listed}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{_dotted(path)}: unknown key '{key}'{hint}; allowed keys here: {', '.join(allowed)}"


def _bad_enum(path: KeyPath, value: Any, expected: str) -> str:
    allowed = [a.strip(" '") for a in expected.replace(" or ", ",").split(",") if a.strip(" '")]
    close = difflib.get_close_matches(str(value)[:100], allowed, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    listed = ", ".join(allowed)
    return f"{_dotted(path)}: {_shown(value)} is not allowed{hint}; allowed values: {listed}"


def _message(err: ErrorDetails) -> tuple[KeyPath, str]:
    path = tuple(str(p) for p in err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return path, _unknown_key(path)
    if kind in ("enum", "literal_error"):
        return path, _bad_enum(path, value, str(err.get("ctx", {}).get("expected", "")))
    if kind in _TYPE_WORDS:
        return path, f"{_dotted(path)}: expected {_TYPE_WORDS[kind]}, got {_shown(value)}"
    if kind == "value_error":  # our own checks: the message says what was expected
        got = "" if isinstance(value, list | dict) else f", got {_shown(value)}"
        return path, f"{_dotted(path)}: {err.get('ctx', {}).get('error')}{got}"
    if kind in _RANGE_WORDS:
        limit = err.get("ctx", {}).get(_RANGE_WORDS[kind][1])
        expected = f"{_RANGE_WORDS[kind][0]} {limit}"
        return path, f"{_dotted(path)}: expected a whole number {expected}, got {_shown(value)}"
    return path, f"{_dotted(path)}: {err['msg']} (got {_shown(value)})"


def validate(doc: dict[str, Any], origins: Origins) -> SandpoolConfig:
    """Build the typed config, or raise ConfigValidationError listing every problem."""
    try:
        return SandpoolConfig.model_validate(doc)
    except ValidationError as exc:
        problems = []
        errors = exc.errors(include_url=False)
        for err in errors[:MAX_PROBLEMS]:
            path, text = _message(err)
            problems.append(text + _where(path, origins))
        if len(errors) > MAX_PROBLEMS:
            problems.append(f"... and {len(errors) - MAX_PROBLEMS} more problems")
        raise ConfigValidationError(problems, total=len(errors)) from exc


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
