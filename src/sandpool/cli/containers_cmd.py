"""``sandpool ps``, ``kill`` and ``gc``: the containers sandpool runs, and clean-up."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from sandpool.cli.options import config_option, load

if TYPE_CHECKING:
    from sandpool.worker.records import ContainerRecord

__all__ = ["gc", "kill", "ps"]


def _sandpool(config_files: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from sandpool.api import Sandpool

    return Sandpool(load(config_files, quiet=True).resolved)


ORPHAN_HINT = ("{count} orphaned container(s): the sandpool process that ran them has died; "
               "`sandpool gc` removes them")  # fmt: skip


def _row(record: ContainerRecord, now: float, warm: bool = False) -> dict[str, Any]:
    """One container as ``ps`` shows it: ``running`` while the sandpool process that owns it
    lives (``warm``: a warm pool's sandbox not claimed yet), else ``orphaned`` (left until
    ``gc``, or the next ``sandpool run``, removes it)."""
    alive = record.owner_alive()
    return {"id": record.id, "pool": record.pool, "runtime": record.runtime,
            "state": ("warm" if warm else "running") if alive else "orphaned",
            "ageSeconds": round(now - record.created, 1), "command": list(record.command),
            "ownerPid": record.owner_pid, "ownerAlive": alive}  # fmt: skip


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ps(config_files: tuple[str, ...], as_json: bool) -> None:
    """List the containers sandpool is running (and those a dead process left: orphaned)."""
    from sandpool.sandbox.launch import is_warm
    from sandpool.worker.records import containers_dir

    now, sp = time.time(), _sandpool(config_files)
    rows = [_row(r, now, is_warm(containers_dir(sp.state_dir) / r.id)) for r in sp.ps()]
    orphans = sum(row["state"] == "orphaned" for row in rows)
    if as_json:
        click.echo(json.dumps(rows))
    else:
        click.echo(f"{'ID':<28} {'POOL':<14} {'RUNTIME':<8} {'STATE':<9} {'AGE':>8}  COMMAND")
        for row in rows:
            age = f"{row['ageSeconds']:.1f}s"
            click.echo(f"{row['id']:<28} {row['pool']:<14} {row['runtime']:<8} "
                       f"{row['state']:<9} {age:>8}  {' '.join(row['command'])}")  # fmt: skip
    if orphans:
        click.echo(ORPHAN_HINT.format(count=orphans), err=True)


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
