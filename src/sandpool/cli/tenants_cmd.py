"""``sandpool tenants create|ls|rm``: tenants of a server (the admin key in
$SANDPOOL_API_KEY)."""

from __future__ import annotations

import click

from sandpool.cli.options import Size
from sandpool.cli.remote import client_options, echo_json, echo_table, open_client

__all__ = ["tenants"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def tenants() -> None:
    """Tenants of the server at $SANDPOOL_URL (with the admin key as $SANDPOOL_API_KEY)."""


@tenants.command("create")
@click.argument("name")
@click.option("--concurrent", type=click.IntRange(0, 1_000_000), default=None,
              help="Runs and sandboxes at once (default: gateway.tenantQuota).")  # fmt: skip
@click.option("--cpu", type=click.FloatRange(0, 1_000_000), default=None,
              help="Cores, summed over them.")  # fmt: skip
@click.option("--memory", type=Size(), default=None, help="Memory, summed over them.")
@click.option("--creates-per-second", type=click.FloatRange(0, 1_000_000, min_open=True),
              default=None, help="Runs and sandboxes created per second.")  # fmt: skip
@_JSON
@client_options
def create(name: str, concurrent: int | None, cpu: float | None, memory: str | None,
           creates_per_second: float | None, as_json: bool, url: str | None) -> None:  # fmt: skip
    """Create tenant NAME."""
    with open_client(url) as client:
        tenant = client.create_tenant(name, concurrent=concurrent, cpu=cpu, memory=memory,
                                      creates_per_second=creates_per_second)  # fmt: skip
    if as_json:
        echo_json(tenant)
    else:
        click.echo(f"created tenant {tenant.name} ({tenant.id})")


@tenants.command("ls")
@_JSON
@client_options
def ls(as_json: bool, url: str | None) -> None:
    """List the tenants and their quotas."""
    with open_client(url) as client:
        found = client.list_tenants()
    if as_json:
        echo_json(found)
        return
    rows = [(t.name, t.id, t.quota["concurrent"], t.quota["cpu"], t.quota["memory"],
             t.quota["createsPerSecond"], t.created_at) for t in found]  # fmt: skip
    echo_table(("NAME", "ID", "CONCURRENT", "CPU", "MEMORY", "CREATES/S", "CREATED"), rows)


@tenants.command("rm")
@click.argument("name")
@client_options
def rm(name: str, url: str | None) -> None:
    """Delete tenant NAME and its keys."""
    with open_client(url) as client:
        client.delete_tenant(name)
    click.echo(f"deleted tenant {name}")
