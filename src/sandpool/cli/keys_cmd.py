"""``sandpool keys create|ls|revoke``: API keys of a server's tenants (the admin key in
$SANDPOOL_API_KEY)."""

from __future__ import annotations

import json

import click

from sandpool.cli.options import Number
from sandpool.cli.remote import client_options, echo_json, echo_table, open_client
from sandpool.config.quantities import TIMEOUT_RANGE

__all__ = ["keys"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def keys() -> None:
    """API keys of the server at $SANDPOOL_URL (with the admin key as $SANDPOOL_API_KEY)."""


@keys.command("create")
@click.option("--tenant", required=True, metavar="NAME", help="The tenant the key acts for.")
@click.option("--name", default="", help="A note to recognise the key by.")
@click.option("--expires-in", type=Number(TIMEOUT_RANGE, "seconds"), default=None,
              metavar="SECONDS", help="The key stops working after this long.")  # fmt: skip
@_JSON
@client_options
def create(tenant: str, name: str, expires_in: float | None, as_json: bool,
           url: str | None) -> None:  # fmt: skip
    """Create a key for a tenant; the key is printed this once (the server keeps its hash)."""
    with open_client(url) as client:
        created = client.create_key(tenant, name=name, expires_in=expires_in)
    if as_json:
        click.echo(json.dumps({"key": created.key, "id": created.id, "tenant": tenant}))
    else:
        click.echo(created.key)
        click.echo(f"(key {created.id} of tenant {tenant}: shown once, keep it)", err=True)


@keys.command("ls")
@click.option("--tenant", default=None, metavar="NAME", help="Only this tenant's keys.")
@_JSON
@client_options
def ls(tenant: str | None, as_json: bool, url: str | None) -> None:
    """List keys (never their secrets)."""
    with open_client(url) as client:
        found = client.list_keys(tenant)
    if as_json:
        echo_json(found)
        return
    rows = [(k.id, k.tenant or "(admin)", k.name, k.created_at, k.expires_at, k.revoked_at)
            for k in found]  # fmt: skip
    echo_table(("ID", "TENANT", "NAME", "CREATED", "EXPIRES", "REVOKED"), rows)


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@client_options
def revoke(key_id: str, url: str | None) -> None:
    """Revoke key ID: it is refused from the next request on."""
    with open_client(url) as client:
        client.revoke_key(key_id)
    click.echo(f"revoked key {key_id}")
