"""A served run's structured request checked field by field into ``RunArgs`` (server side).

The client (``warm.run_argv``) sends the fields of ``sandpool run``'s flags as JSON; any
process of the same user may connect, so each is checked here as click checks the flag: the
same bounds (``config.quantities``), sizes (``sizes``), ``--allow`` forms and choices. A bad
one is a ``BadMessage`` naming the flag and what it must be, the line the client gets with
exit status 125. Relative configuration files are made absolute against the client's cwd.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from sandpool.config.paths import CONFIG_ENV_VAR
from sandpool.config.quantities import (
    CPU_RANGE,
    GPU_RANGE,
    PIDS_RANGE,
    TIMEOUT_RANGE,
    check_number,
    range_text,
)
from sandpool.oneshot.execute import RunArgs
from sandpool.sizes import MIN_DISK, parse_size
from sandpool.warm.messages import MAX_ARGS, BadMessage, RunMessage, text_list, text_value

__all__ = ["RUN_FIELDS", "run_args", "run_environ"]

NETWORKS = ("none", "allow", "open")


def _invalid(flag: str, why: str) -> BadMessage:
    return BadMessage(f"Invalid value for '--{flag}': {why}")


def _number(value: object, flag: str, bounds: tuple[float, float], unit: str,
            whole: bool) -> float:  # fmt: skip
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _invalid(flag, f"expected {range_text(bounds, unit, whole=whole)}")
    try:
        return check_number(value, bounds, unit)
    except ValueError as exc:
        raise _invalid(flag, str(exc).replace("a number", "a whole number", whole)) from None


def _size(flag: str, minimum: int) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = text_value(value, f"--{flag}")
        try:
            parse_size(text, minimum)
        except ValueError as exc:
            raise _invalid(flag, str(exc)) from None
        return text

    return check


def _env(value: object) -> tuple[str, ...]:
    entries = text_list(value, "--env", MAX_ARGS)
    for entry in entries:
        if "=" not in entry or entry.startswith("="):
            raise _invalid("env", f"{entry[:64]!r} is not K=V")
    return entries


def _allow(value: object) -> tuple[str, ...]:
    from sandpool.network.policy import parse_allow

    entries = text_list(value, "--allow", MAX_ARGS)
    for entry in entries:
        try:
            parse_allow(entry)
        except ValueError as exc:
            raise _invalid("allow", str(exc)) from None
    return entries


def _network(value: object) -> str:
    text = text_value(value, "--network")
    if text not in NETWORKS:
        raise _invalid("network", f"{text[:64]!r} is not one of 'none', 'allow', 'open'")
    return text


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadMessage(f"json must be true or false, not {type(value).__name__}")
    return value


# field -> (RunArgs attribute, check); the field is absent when the flag was not given
RUN_FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "pool": ("pool", lambda v: text_value(v, "--pool")),
    "image": ("image", lambda v: text_value(v, "--image")),
    "cpu": ("cpu", lambda v: _number(v, "cpu", CPU_RANGE, "cores", False)),
    "memory": ("memory", _size("memory", 1)),
    "pids": ("pids", lambda v: int(_number(v, "pids", PIDS_RANGE, "processes", True))),
    "timeout": ("timeout", lambda v: _number(v, "timeout", TIMEOUT_RANGE, "seconds", False)),
    "env": ("env", _env),
    "workdir": ("workdir", lambda v: text_value(v, "--workdir")),
    "gpus": ("gpus", lambda v: int(_number(v, "gpu", GPU_RANGE, "GPUs", True))),
    "disk": ("disk", _size("disk", MIN_DISK)),
    "network": ("network", _network),
    "allow": ("allow", _allow),
    "json": ("as_json", _flag),
    "command": ("command", lambda v: text_list(v, "command", MAX_ARGS)),
}
DEFAULTS: dict[str, object] = {
    "pool": "default", "image": None, "cpu": None, "memory": None, "pids": None,
    "timeout": None, "env": (), "workdir": None, "gpus": 0, "disk": None, "network": None,
    "allow": (), "as_json": False, "command": (),
}  # fmt: skip


def run_args(message: RunMessage) -> RunArgs:
    """The run ``message`` asks for, every field checked; BadMessage naming a bad one."""
    unknown = sorted(set(message.run) - set(RUN_FIELDS))
    if unknown:
        raise BadMessage(f"run has unknown fields {unknown[:8]}, expected some of "
                         f"{', '.join(RUN_FIELDS)}")  # fmt: skip
    fields = dict(DEFAULTS)
    for name, value in message.run.items():
        attribute, check = RUN_FIELDS[name]
        fields[attribute] = check(value)
    fields["config_files"] = tuple(os.path.join(message.cwd, f) for f in message.config)
    return RunArgs(**fields)  # type: ignore[arg-type]  # each field checked above


def run_environ(message: RunMessage) -> Mapping[str, str]:
    """The client's ``SANDPOOL_*`` variables, ``$SANDPOOL_CONFIG`` made absolute."""
    environ = dict(message.env)
    if environ.get(CONFIG_ENV_VAR):
        environ[CONFIG_ENV_VAR] = os.path.join(message.cwd, environ[CONFIG_ENV_VAR])
    return environ
