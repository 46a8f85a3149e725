"""One-shot runs as the gateway and its workers pass them through the dispatch: a
``RunRequest`` (with its stdin) to a worker, a ``RunResult`` (with its captured output)
back, as JSON (bytes in base64). Bind mounts never travel: the API cannot ask for them."""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from typing import Any

from sandpool.worker.request import RunRequest, RunResult

__all__ = ["request_from_wire", "request_to_wire", "result_from_wire", "result_to_wire"]

_BYTES = ("stdout", "stderr")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: object) -> bytes | None:
    return None if text is None else base64.b64decode(str(text))


def request_to_wire(pool: str, request: RunRequest, stdin: bytes | None) -> dict[str, Any]:
    """The delivery's payload for a run of ``request`` in ``pool``."""
    data = asdict(request)
    data.pop("mounts")
    return {"pool": pool, "run": data, "stdin": _b64(stdin)}


def request_from_wire(payload: dict[str, Any]) -> tuple[str, RunRequest, bytes | None]:
    """Back from ``request_to_wire`` (TypeError/ValueError/KeyError if malformed)."""
    data = dict(payload["run"])
    for name in ("command", "env"):
        data[name] = tuple(str(x) for x in data.get(name) or ())
    if data.get("allow") is not None:
        data["allow"] = tuple(str(x) for x in data["allow"])
    return str(payload["pool"]), RunRequest(**data), _unb64(payload.get("stdin"))


def result_to_wire(result: RunResult) -> dict[str, Any]:
    """A finished run as JSON."""
    data = asdict(result)
    for name in _BYTES:
        data[name] = _b64(data[name])
    return data


def result_from_wire(data: dict[str, Any]) -> RunResult:
    """Back from ``result_to_wire`` (unknown keys ignored)."""
    known = {f.name for f in fields(RunResult)}
    values = {k: v for k, v in data.items() if k in known}
    for name in _BYTES:
        values[name] = _unb64(values.get(name))
    return RunResult(**values)
