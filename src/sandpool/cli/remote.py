"""What the commands that drive a server share: the client (``$SANDPOOL_URL`` and
``$SANDPOOL_API_KEY``, or ``--url``), and printing rows as a table or JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

__all__ = ["client_options", "echo_json", "echo_table", "open_client"]

F = TypeVar("F", bound=Callable[..., Any])


def client_options(func: F) -> F:
    """``--url URL`` (default $SANDPOOL_URL); the key is always $SANDPOOL_API_KEY, so that it
    never shows in a process list."""
    return click.option("--url", default=None, metavar="URL",
                        help="The server (default: $SANDPOOL_URL).")(func)  # fmt: skip


def open_client(url: str | None) -> Any:
    """A ``sandpool.client.Client`` for ``url`` (imported here: only these commands pay)."""
    from sandpool.client import Client

    return Client(url)


def echo_json(value: Any) -> None:
    """One JSON document on stdout (dataclasses as objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        value = [dataclasses.asdict(v) for v in value]
    click.echo(json.dumps(value, indent=2))


def echo_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned columns, one line per row."""
    cells = [list(header)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
