"""Options shared by several command groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["config_option", "load", "pool_option"]

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """``-c/--config FILE`` (repeatable; later files override earlier ones)."""
    return click.option(
        "-c",
        "--config",
        "config_files",
        multiple=True,
        metavar="FILE",
        help="Configuration file (default: $SANDPOOL_CONFIG, else the embedded default).",
    )(func)


def pool_option(func: F) -> F:
    """``--pool P``."""
    return click.option("--pool", "pool", default=None, metavar="POOL", help="Only this pool.")(
        func
    )


def load(config_files: tuple[str, ...], *, quiet: bool = False) -> Any:
    """Load the configuration and print its warnings on stderr; returns a LoadedConfig."""
    from sandpool.config import LoadedConfig

    loaded = LoadedConfig.load(config_files)
    if not quiet:
        for warning in loaded.warnings:
            click.echo(f"warning: {warning}", err=True)
    return loaded
