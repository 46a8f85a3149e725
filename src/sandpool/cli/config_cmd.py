"""``sandpool config``: validate, show and migrate configuration files."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sandpool.cli.options import config_option, load, pool_option
from sandpool.config import LoadedConfig
from sandpool.errors import ConfigValidationError

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


def _check_migrated(text: str, where: str) -> list[str]:
    """Validate the migrated text on its own (no env); returns the warnings it still draws."""
    from sandpool.config.sources import parse_yaml

    doc, origins = parse_yaml(text, where)
    try:
        return LoadedConfig.from_document(doc, origins, [where]).warnings
    except ConfigValidationError as error:
        error.hint = "found after migration; nothing was written: fix these, then migrate again"
        raise


def _summary(file: str, changes: list[str], written: bool) -> list[str]:
    if not changes:
        return [f"{file}: no change needed (it already uses the new field names)"]
    head = f"{file}: {len(changes)} change(s)" + (", written in place" if written else "")
    return [head, *(f"  {change}" for change in changes)]


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--write", is_flag=True, help="Rewrite FILE in place instead of printing it.")
def migrate(file: str, write: bool) -> None:
    """Rewrite old field names (runtimeConfig; runtime: runc|gvisor) to the new ones.

    Without --write the migrated YAML goes to stdout and the summary to stderr.
    """
    from sandpool.config.migration import migrate as migrate_text
    from sandpool.config.migration import read_config_text, write_atomically

    result = migrate_text(read_config_text(file), file)
    warnings = _check_migrated(result.text, file)
    if write and result.changed:
        write_atomically(file, result.text)
    elif not write:
        click.echo(result.text, nl=False)
    for line in _summary(file, result.changes, write):
        click.echo(line, err=not write)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
