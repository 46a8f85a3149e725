"""``sandpool config``: validate, show and migrate configuration files."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sandpool.cli.options import config_option, load, pool_option
from sandpool.config import LoadedConfig

__all__ = ["config"]


@click.group()
def config() -> None:
    """Validate, show and migrate worker-pool configuration."""


@config.command()
@config_option
def validate(config_files: tuple[str, ...]) -> None:
    """Exit 0 if the configuration is valid; otherwise list every problem and exit 2."""
    loaded = load(config_files)
    pools = ", ".join(f"{n} ({p.container_runtime})" for n, p in loaded.resolved.pools.items())
    click.echo(f"ok: {' + '.join(loaded.sources)}: {len(loaded.resolved.pools)} pool(s): {pools}")


def shown(loaded: LoadedConfig, pool: str | None) -> dict[str, Any]:
    """The fully resolved configuration, in the document's own shape."""
    resolved = loaded.resolved
    names = [resolved.pool(pool).name] if pool else list(resolved.pools)
    return {
        "worker": {
            "runcPath": resolved.runc_path,
            "runscPath": resolved.runsc_path,
            "stateDir": resolved.state_dir,
            "defaultImage": resolved.default_image or None,
            "pools": {name: resolved.pools[name].public_dict() for name in names},
        }
    }


@config.command()
@config_option
@pool_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(config_files: tuple[str, ...], pool: str | None, as_json: bool) -> None:
    """Print the fully resolved configuration, every default applied."""
    data = shown(load(config_files), pool)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(data, sys.stdout)
