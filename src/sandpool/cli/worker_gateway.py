"""The options of ``sandpool worker --gateway``, checked: one line naming the bad one."""

from __future__ import annotations

import os

import click

from sandpool.dispatch.worker_main import WorkerOptions, host_capacity, worker_token
from sandpool.errors import ConfigError
from sandpool.sizes import parse_size

__all__ = ["gateway_options"]


def _pool_rank(pool: str, config_files: tuple[str, ...]) -> tuple[int, bool]:
    """The pool's ``priority`` and ``requiresPoolSelector`` where a file states them (a
    Job's environment carries the resolved config, which has neither: 0 and false)."""
    if not config_files and not os.environ.get("SANDPOOL_CONFIG"):
        return 0, False
    from sandpool.config import LoadedConfig

    pools = LoadedConfig.load(config_files, os.environ).model.worker.pools
    found = pools.get(pool)
    return (found.priority, found.requires_pool_selector) if found else (0, False)


def gateway_options(gateway: str, listen: str, advertise: str | None, cpu: float | None,
                    memory: str | None, sandboxes: int, pool: str,
                    config_files: tuple[str, ...]) -> WorkerOptions:  # fmt: skip
    """The options, or a BadParameter / ConfigError naming the one at fault."""
    from sandpool.service.server import parse_listen

    if not gateway.startswith(("http://", "https://")):
        raise click.BadParameter("expected the gateway's URL, e.g. http://127.0.0.1:1994",
                                 param_hint="--gateway")  # fmt: skip
    try:
        host, port = parse_listen(listen)
        mem = None if memory is None else parse_size(memory)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen/--memory") from exc
    if advertise is not None and not advertise.startswith(("http://", "https://")):
        raise ConfigError("--advertise must be an http:// or https:// URL")
    priority, selector = _pool_rank(pool, config_files)
    return WorkerOptions(gateway, worker_token(), host, port, advertise,
                         host_capacity(cpu, mem, sandboxes), priority, selector)  # fmt: skip
