"""The ``sandpool`` entry point: lazy command loading and the one place errors are printed."""

from __future__ import annotations

import importlib
from typing import Any

import click

from sandpool.errors import SandpoolError

__all__ = ["cli", "main"]

# command name -> "module:attribute"; modules are imported only when their command runs, so
# `sandpool run` does not pay for the Kubernetes or migration code.
COMMANDS = {
    "config": "sandpool.cli.config_cmd:config",
    "explain": "sandpool.cli.explain_cmd:explain",
    "run": "sandpool.cli.run_cmd:run",
    "sandbox": "sandpool.cli.sandbox_cmd:sandbox",
    "serve": "sandpool.cli.serve_cmd:serve",
    "server": "sandpool.cli.server_cmd:server",
    "tenants": "sandpool.cli.tenants_cmd:tenants",
    "keys": "sandpool.cli.keys_cmd:keys",
    "ps": "sandpool.cli.containers_cmd:ps",
    "kill": "sandpool.cli.containers_cmd:kill",
    "gc": "sandpool.cli.containers_cmd:gc",
    "images": "sandpool.cli.images_cmd:images",
    "k8s": "sandpool.cli.k8s_cmd:k8s",
    "worker": "sandpool.cli.worker_cmd:worker",
    "up": "sandpool.cli.up_cmd:up",
    "doctor": "sandpool.cli.doctor_cmd:doctor",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SandpoolError as error:
            ctx.exit(report(error))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sandpool")
def cli() -> None:
    """Run untrusted code in containers grouped into worker pools (runc or gVisor)."""


def report(error: SandpoolError) -> int:
    """Print ``Type: message`` on stderr and return the exit status the error carries."""
    click.echo(f"{type(error).__name__}: {error}", err=True)
    return error.exit_code


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="sandpool")
