"""The runsc flags a pool may add with ``gvisorExtraArgs``: an allowlist of harmless ones.

sandpool passes ``--root``, ``--platform`` and ``--network=none`` to every runsc call (and
``--nvproxy`` to GPU containers); runsc's flag parser lets a later flag win, so an extra
argument could undo any of them, and many other flags weaken the sandbox (``--net-raw``,
``--ignore-cgroups``, ``--host-uds``, ``--rootless``, a debug log written to any host path,
``--allow-flag-override``...). Like runsc's own table of flags an annotation may override,
only what is listed here is accepted, each in the ``--name`` or ``--name=value`` form of one
argument; everything else is refused when the configuration is validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ALLOWED_FLAGS", "SET_BY_SANDPOOL", "RunscFlag", "check_extra_args"]

_BOOL = "true|false"
_FORMATS = "text|json|json-k8s"


@dataclass(frozen=True)
class RunscFlag:
    """One allowed flag: its name, the values it takes (a regex; None: a plain switch) and why
    it is harmless."""

    name: str
    values: str | None
    why: str


ALLOWED_FLAGS = {
    flag.name: flag
    for flag in (
        RunscFlag("debug", _BOOL, "verbose logs, discarded: sandpool sets no debug log"),
        RunscFlag("strace", _BOOL, "trace the sandbox's system calls into the debug log"),
        RunscFlag("strace-syscalls", r"[a-z0-9_]+(,[a-z0-9_]+)*", "which calls to trace"),
        RunscFlag("strace-log-size", r"[0-9]{1,9}", "bytes of each traced argument"),
        RunscFlag("strace-event", _BOOL, "trace as events instead of log lines"),
        RunscFlag("log-format", _FORMATS, "format of runsc's log"),
        RunscFlag("debug-log-format", _FORMATS, "format of the debug log"),
        RunscFlag("oci-seccomp", _BOOL, "also apply the OCI seccomp filter inside the sandbox"),
        RunscFlag("cpu-num-from-quota", _BOOL, "size the guest's CPU count by the CPU quota"),
        RunscFlag("watchdog-action", "log|panic", "what the Sentry's watchdog does"),
        RunscFlag("file-access", "exclusive|shared", "how the root filesystem is cached"),
    )
}
SET_BY_SANDPOOL = frozenset({"root", "platform", "network", "nvproxy"})
_ARG = re.compile(r"--?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?:=(?P<value>.*))?", re.DOTALL)


def _refusal(name: str, value: str | None) -> str | None:
    """Why one parsed flag is refused, or None when it is allowed."""
    flag = ALLOWED_FLAGS.get(name)
    if name in SET_BY_SANDPOOL:
        return f"sandpool sets --{name} itself and an extra flag would override it"
    if flag is None:
        return f"--{name} is not on the allowlist of harmless runsc flags"
    if value is None:
        return None if flag.values == _BOOL else f"write --{name}=VALUE as one argument"
    if re.fullmatch(flag.values or "", value) is None:
        return f"--{name} takes {flag.values.replace('|', ' | ') if flag.values else 'no value'}"
    return None


def check_extra_args(args: list[str]) -> list[str]:
    """``args`` when every one is allowed; else ValueError naming the first refused one and
    the allowed flags."""
    for index, arg in enumerate(args):
        match = _ARG.fullmatch(arg)
        if match is None:
            why = "not a runsc flag (--name or --name=value)"
        else:
            why = _refusal(match["name"], match["value"]) or ""
        if why:
            allowed = ", ".join(f"--{name}" for name in ALLOWED_FLAGS)
            raise ValueError(f"item {index}: {why}; allowed flags: {allowed}")
    return args
