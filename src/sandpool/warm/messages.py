"""Every message of the warm-run protocol checked before it is used (``warm.protocol``).

A client is another process of the same user, but not necessarily sandpool's own client: each
field is checked for its type, range, size and NUL bytes, and a bad message becomes one
``BadMessage`` whose text is the line the client gets on its stderr (with exit status 125, as
the CLI gives for a bad flag). Standard library only.
"""

from __future__ import annotations

import json
import signal

from sandpool.warm.protocol import MAX_MESSAGE

__all__ = [
    "FORWARDED_SIGNALS",
    "MAX_ARGS",
    "MAX_CONFIG_FILES",
    "MAX_ENV",
    "MAX_PATH",
    "BadMessage",
    "RunMessage",
    "parse_exit",
    "parse_request",
    "parse_run",
    "parse_signal",
    "text_list",
    "text_value",
]

MAX_ARGS = 65536  # the command's arguments, --env or --allow entries (Linux's own limit is
# about as many arguments)
MAX_CONFIG_FILES = 256  # -c files
MAX_ENV = 1024  # SANDPOOL_* variables
MAX_PATH = 4096  # PATH_MAX, for the client's directory
FORWARDED_SIGNALS = (int(signal.SIGHUP), int(signal.SIGINT), int(signal.SIGTERM))
ENV_PREFIX = "SANDPOOL_"


class BadMessage(ValueError):
    """A message that breaks the protocol; ``str()`` is the line for the client."""


class RunMessage:
    """The first message of a run: the fields of ``sandpool run``'s flags (``run``, checked
    by ``warm.run_message`` in the server), its ``-c`` files, the client's directory and its
    ``SANDPOOL_*`` variables. (A plain class: the thin client imports this module, and
    ``dataclasses`` would cost it several milliseconds.)"""

    __slots__ = ("config", "cwd", "env", "run")

    def __init__(self, run: dict[str, object], config: tuple[str, ...], cwd: str,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.run, self.config, self.cwd, self.env = run, config, cwd, env


def _object(data: bytes, keys: frozenset[str] | None) -> dict[str, object]:
    """``data`` as a JSON object (with exactly ``keys``, unless None)."""
    if len(data) >= MAX_MESSAGE:  # a datagram cut at the receiver's buffer
        raise BadMessage(f"the message is {MAX_MESSAGE} bytes or more")
    try:
        message = json.loads(data)
    except RecursionError:
        raise BadMessage("the message is nested too deeply") from None
    except ValueError as exc:  # not UTF-8, not JSON, an integer of too many digits
        raise BadMessage(f"the message is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise BadMessage(f"the message is a JSON {type(message).__name__}, not an object")
    if keys is not None and set(message) != keys:
        expected = ", ".join(sorted(keys))
        raise BadMessage(f"the message has keys {sorted(message)[:8]}, expected {expected}")
    return message


def text_value(value: object, what: str) -> str:
    """A string without NUL bytes that is valid UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise BadMessage(f"{what} must be a string, not {type(value).__name__}")
    if "\0" in value:
        raise BadMessage(f"{what} contains a NUL byte, which no program can receive")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadMessage(f"{what} is not valid UTF-8 text") from None
    return value


def text_list(value: object, what: str, most: int) -> tuple[str, ...]:
    """A list of at most ``most`` strings, each as ``text_value``."""
    if not isinstance(value, list):
        raise BadMessage(f"{what} must be a list of strings, not {type(value).__name__}")
    if len(value) > most:
        raise BadMessage(f"{what} has {len(value)} entries, more than {most}")
    return tuple(text_value(item, f"entry {i} of {what}") for i, item in enumerate(value))


def _cwd(value: object) -> str:
    cwd = text_value(value, "cwd")
    if not cwd.startswith("/") or len(cwd.encode()) > MAX_PATH:
        raise BadMessage(f"cwd must be an absolute path of at most {MAX_PATH} bytes")
    return cwd


def _env(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadMessage(f"env must be an object of strings, not {type(value).__name__}")
    if len(value) > MAX_ENV:
        raise BadMessage(f"env has {len(value)} variables, more than {MAX_ENV}")
    env = {}
    for key, text in value.items():
        name = text_value(key, "an env name")
        if not name.startswith(ENV_PREFIX) or "=" in name:
            raise BadMessage(f"env name {name[:64]!r} is not a {ENV_PREFIX}* variable name")
        env[name] = text_value(text, f"env {name}")
    return env


RUN_KEYS = frozenset({"run", "config", "cwd", "env"})


def parse_run(data: bytes) -> RunMessage:
    """The client's first message, checked (its ``run`` fields: ``warm.run_message``)."""
    return _run_message(_object(data, RUN_KEYS))


def _run_message(message: dict[str, object]) -> RunMessage:
    run = message["run"]
    if not isinstance(run, dict):
        raise BadMessage(f"run must be an object of fields, not {type(run).__name__}")
    config = text_list(message["config"], "config", MAX_CONFIG_FILES)
    return RunMessage(run, config, _cwd(message["cwd"]), _env(message["env"]))


def parse_request(data: bytes) -> RunMessage | dict[str, object]:
    """The client's first message: a run (checked), or the JSON object of a ``sandpool
    sandbox …`` request (one with a ``sandbox`` key; ``warm.sandbox_ops`` checks its fields)."""
    message = _object(data, None)
    if "sandbox" in message:
        return message
    _object(data, RUN_KEYS)  # the keys a run has, with the same message when not
    return _run_message(message)


def _number(message: dict[str, object], key: str, allowed: range | tuple[int, ...]) -> int:
    value = message[key]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        shown = json.dumps(value)[:32] if isinstance(value, int | float) else type(value).__name__
        raise BadMessage(f"{key} must be one of {_describe(allowed)}, not {shown}")
    return value


def _describe(allowed: range | tuple[int, ...]) -> str:
    if isinstance(allowed, range):
        return f"{allowed.start}-{allowed.stop - 1}"
    return ", ".join(str(n) for n in allowed)


def parse_signal(data: bytes) -> int:
    """A client's ``{"signal": N}``: SIGINT or SIGTERM, the signals the client forwards."""
    return _number(_object(data, frozenset({"signal"})), "signal", FORWARDED_SIGNALS)


def parse_exit(data: bytes) -> int:
    """The server's ``{"exit": N}``: an exit status, 0-255."""
    return _number(_object(data, frozenset({"exit"})), "exit", range(256))
