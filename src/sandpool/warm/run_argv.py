"""``sandpool run``'s flags parsed by the thin client into the structured run request a
server takes (``warm.run_message`` checks it there). Standard library only.

The grammar is click's, for these options only: ``--opt VALUE``, ``--opt=VALUE``, ``-c FILE``
and ``-cFILE``, options anywhere before ``--``, a value taken whatever it starts with. What
this parser does not know (``--help``, an unknown option, a flag given a value, a missing
value, a number that is not one) gives None: the run then goes in-process, where click says
what is wrong exactly as it always has. A unit test checks it against click's own parse.
"""

from __future__ import annotations

__all__ = ["parse_argv"]

# option -> (request field, kind): text, float, int, multiple (a list of texts)
OPTIONS = {
    "--pool": ("pool", "text"),
    "--image": ("image", "text"),
    "--cpu": ("cpu", "float"),
    "--memory": ("memory", "text"),
    "--pids": ("pids", "int"),
    "--timeout": ("timeout", "float"),
    "--env": ("env", "multiple"),
    "--workdir": ("workdir", "text"),
    "--gpu": ("gpus", "int"),
    "--disk": ("disk", "text"),
    "--network": ("network", "text"),
    "--allow": ("allow", "multiple"),
    "--config": ("config", "multiple"),
    "-c": ("config", "multiple"),
}
FLAGS = {"--json": "json"}


class _Unknown(Exception):
    """Something this parser leaves to click."""


def _split(arg: str) -> tuple[str, str | None]:
    """``--opt=value`` -> (``--opt``, ``value``); ``-cFILE`` -> (``-c``, ``FILE``)."""
    if arg.startswith("--"):
        name, sep, value = arg.partition("=")
        return name, value if sep else None
    if arg.startswith("-c") and len(arg) > 2:
        return "-c", arg[2:]
    return arg, None


def _convert(kind: str, text: str) -> object:
    try:
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(text)
    except ValueError:  # click words this one (its Number type): leave it to click
        raise _Unknown(text) from None
    return text


def _store(request: dict[str, object], name: str, value: str) -> None:
    field, kind = OPTIONS[name]
    if kind == "multiple":
        values = request.setdefault(field, [])
        assert isinstance(values, list)
        values.append(value)
    else:
        request[field] = _convert(kind, value)


def _parse(args: list[str]) -> dict[str, object]:
    request: dict[str, object] = {}
    command: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            command.extend(rest)
            break
        if not arg.startswith("-") or arg == "-":
            command.append(arg)
            continue
        name, value = _split(arg)
        if name in FLAGS and value is None:
            request[FLAGS[name]] = True
            continue
        if name not in OPTIONS:
            raise _Unknown(name)
        if value is None:
            value = next(rest, None)
            if value is None:
                raise _Unknown(name)
        _store(request, name, value)
    request["command"] = command
    return request


def parse_argv(args: list[str]) -> dict[str, object] | None:
    """The arguments after ``run`` as request fields; None when click must see them."""
    try:
        return _parse(args)
    except _Unknown:
        return None
