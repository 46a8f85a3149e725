"""Options shared by several command groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sandpool.config.quantities import check_number, parse_size, range_text

__all__ = ["Number", "Size", "config_option", "load", "pool_option"]

F = TypeVar("F", bound=Callable[..., Any])


class Number(click.ParamType[float | int, Any]):
    """A finite number within bounds (NaN, infinities and out-of-range values are refused);
    ``whole`` takes integers only. Bounds come from ``config.quantities``, as for the keys."""

    def __init__(self, bounds: tuple[float, float], unit: str, *, whole: bool = False) -> None:
        self.bounds, self.unit, self.whole = bounds, unit, whole
        self.name = "integer" if whole else "float"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:  # fmt: skip
        try:
            number = (int if self.whole else float)(value)
            return check_number(number, self.bounds, self.unit)
        except (ValueError, TypeError, OverflowError):
            expected = range_text(self.bounds, self.unit, whole=self.whole)
            self.fail(f"expected {expected}", param, ctx)


class Size(click.ParamType[str, Any]):
    """A size such as ``512Mi`` (kept as text; checked as ``containerDefaults.memory`` is)."""

    name = "size"

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:  # fmt: skip
        try:
            parse_size(str(value), self.minimum)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value


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
