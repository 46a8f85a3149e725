"""The gateway's dispatch from its flags and environment: the broker on ``--redis``, the
worker token, and the bounds (``SANDPOOL_DISPATCH_LEASE``, ``…_BACKLOG_TIMEOUT``,
``…_MAX_BACKLOG``, ``…_ACK_TIMEOUT``, ``…_PREFIX``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields

from sandpool.config.resolved import ResolvedConfig
from sandpool.dispatch.broker import Broker, DispatchSettings
from sandpool.dispatch.gateway import Dispatcher
from sandpool.dispatch.worker_main import worker_token
from sandpool.errors import ConfigError, DispatchError

__all__ = ["gateway_dispatch", "settings_from_env"]

ENV = "SANDPOOL_DISPATCH_"


def settings_from_env(environ: Mapping[str, str]) -> DispatchSettings:
    """The defaults, with each ``SANDPOOL_DISPATCH_<FIELD>`` that is set (ConfigError naming a
    variable that is not a positive number)."""
    values: dict[str, float | int] = {}
    for item in fields(DispatchSettings):
        name = f"{ENV}{item.name.upper()}"
        if name not in environ:
            continue
        try:
            value = float(environ[name])
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {environ[name]!r}")
        values[item.name] = int(value) if item.name == "max_backlog" else value
    return DispatchSettings(**values)  # type: ignore[arg-type]


def gateway_dispatch(url: str, config: ResolvedConfig,
                     environ: Mapping[str, str]) -> tuple[Dispatcher, str]:  # fmt: skip
    """The dispatcher over the Redis at ``url`` (checked now) and the worker token."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"--redis must be a redis://, rediss:// or unix:// URL, got {url!r}")
    token = worker_token(dict(environ))
    prefix = environ.get(f"{ENV}PREFIX", "sp:")
    broker = Broker.connect(url, prefix=prefix, settings=settings_from_env(environ))
    try:
        broker.workers()  # fail now, naming the URL, if Redis does not answer
    except DispatchError as exc:
        raise ConfigError(f"--redis: {exc.message}", hint=exc.hint) from exc
    return Dispatcher(broker, config), token
