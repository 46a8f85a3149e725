"""``sandpool ps``, ``kill`` and ``gc``: the containers sandpool runs, and clean-up."""

from __future__ import annotations

import json
import time

import click

from sandpool.cli.options import config_option, load

__all__ = ["gc", "kill", "ps"]


def _sandpool(config_files: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from sandpool.api import Sandpool

    return Sandpool(load(config_files, quiet=True).resolved)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ps(config_files: tuple[str, ...], as_json: bool) -> None:
    """List the containers sandpool is running."""
    records = _sandpool(config_files).ps()
    now = time.time()
    if as_json:
        rows = [{"id": r.id, "pool": r.pool, "runtime": r.runtime, "ageSeconds": round(now -
                 r.created, 1), "command": list(r.command), "ownerPid": r.owner_pid,
                 "ownerAlive": r.owner_alive()} for r in records]  # fmt: skip
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'ID':<28} {'POOL':<14} {'RUNTIME':<8} {'AGE':>8}  COMMAND")
    for r in records:
        age = f"{now - r.created:.1f}s"
        click.echo(f"{r.id:<28} {r.pool:<14} {r.runtime:<8} {age:>8}  {' '.join(r.command)}")


@click.command()
@config_option
@click.argument("container_id")
def kill(config_files: tuple[str, ...], container_id: str) -> None:
    """Stop one container (its `sandpool run` then exits 137)."""
    _sandpool(config_files).kill(container_id)
    click.echo(f"killed {container_id}")


@click.command()
@config_option
def gc(config_files: tuple[str, ...]) -> None:
    """Remove everything a crashed or killed sandpool left behind."""
    removed = _sandpool(config_files).gc()
    for cid in removed:
        click.echo(f"removed {cid}")
    click.echo(f"gc: {len(removed)} container(s) removed")
