"""``sandpool sandbox create|ls|inspect|exec|cp|network|expose|pause|resume|rm``: sandboxes.

Every command goes to the running ``sandpool serve`` (``warm.sandbox_ops``), which owns the
sandboxes, so they outlive this process. Without a server the command fails (125) and says
how to start one. ``exec`` exits with the command's status (124 timeout, 137 killed or OOM,
126/127 as ``sandpool run``); ``--json`` prints the result as one JSON object instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from sandpool.cli.options import Number, Size, config_option
from sandpool.cli.run_cmd import RunCommand, RunUsageError, check_allow
from sandpool.config.quantities import CPU_RANGE, PIDS_RANGE, TIMEOUT_RANGE
from sandpool.errors import ServeError
from sandpool.sizes import MIN_DISK

__all__ = ["sandbox"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_network_option = click.option(
    "--network", type=click.Choice(["none", "allow", "open"]), default=None,
    help="Network policy (default: the pool's containerDefaults.network).",
)  # fmt: skip
_allow_option = click.option(
    "--allow", multiple=True, callback=check_allow, metavar="CIDR|HOST:PORT|DOMAIN",
    help="Allowed destination (repeatable; implies --network allow).",
)  # fmt: skip


def _call(op: str, args: dict[str, Any], config_files: tuple[str, ...]) -> tuple[Any, int]:
    from sandpool.warm.sandbox_client import call_served

    served = call_served(op, args, config_files)
    if served is None:
        raise ServeError(
            "`sandpool sandbox` needs a running `sandpool serve`: sandboxes belong to the "
            "process that serves them, and this one would take them with it when it exits",
            hint="start one with `sandpool serve &` or `sandpool server &` (same user, same "
            "SANDPOOL_SOCKET)",
        )
    return served.result, served.exit


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


def _finish(result: Any, code: int, as_json: bool, text: str | None = None) -> None:
    if as_json and result is not None:
        click.echo(json.dumps(result))
    elif text is not None and code == 0:
        click.echo(text)
    sys.exit(code)


@click.group()
def sandbox() -> None:
    """Long-lived sandboxes: create one, exec in it, copy files, pause, remove (needs a
    running `sandpool serve`)."""


@sandbox.command(cls=RunCommand)  # bad flags: 125, as for `sandpool run`
@config_option
@click.option("--pool", default="default", show_default=True, help="Pool to create it in.")
@click.option("--image", default=None, help="Image reference (default: the pool's).")
@click.option("--cpu", type=Number(CPU_RANGE, "cores"), default=None, help="CPUs (e.g. 0.5).")
@click.option("--memory", type=Size(), default=None,
              help="Memory limit of the whole sandbox (e.g. 512Mi).")  # fmt: skip
@click.option("--pids", type=Number(PIDS_RANGE, "processes", whole=True), default=None,
              help="Process limit.")  # fmt: skip
@click.option("--disk", type=Size(MIN_DISK), default=None,
              help="Size of its writable layer (e.g. 1Gi).")  # fmt: skip
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Environment of every exec.")
@click.option("-w", "--workdir", default=None, help="Working directory of every exec.")
@click.option("--ttl", type=Number(TIMEOUT_RANGE, "seconds"), default=None,
              help="Seconds it lives from ready.")  # fmt: skip
@click.option("--idle-timeout", type=Number(TIMEOUT_RANGE, "seconds"), default=None,
              help="Idle seconds before it ends.")  # fmt: skip
@click.option("-l", "--label", multiple=True, metavar="K=V", help="Label (repeatable).")
@_network_option
@_allow_option
@_json_option
def create(config_files: tuple[str, ...], pool: str, image: str | None, cpu: float | None,
           memory: str | None, pids: int | None, disk: str | None, env: tuple[str, ...],
           workdir: str | None, ttl: float | None, idle_timeout: float | None,
           label: tuple[str, ...], network: str | None, allow: tuple[str, ...],
           as_json: bool) -> None:  # fmt: skip
    """Start a sandbox; prints its id."""
    args = {"pool": pool, "image": image, "cpu": cpu, "memory": memory, "pids": pids,
            "disk": disk, "env": list(env), "workdir": workdir, "ttl": ttl,
            "idleTimeout": idle_timeout, "labels": _labels(label), "network": network,
            "allow": list(allow) if allow else None}  # fmt: skip
    result, code = _call("create", args, config_files)
    _finish(result, code, as_json, result["id"] if result else None)


@sandbox.command(cls=RunCommand)
@config_option
@_json_option
@click.argument("sandbox_id", metavar="ID")
@click.argument("port", type=click.IntRange(1, 65535))
def expose(config_files: tuple[str, ...], as_json: bool, sandbox_id: str, port: int) -> None:
    """Make a sandbox's TCP PORT reachable on this host's loopback (while it runs and the
    server serves it); prints HOST:PORT to connect to."""
    result, code = _call("expose", {"id": sandbox_id, "port": port}, config_files)
    found = [f"{p['host']}:{p['hostPort']}" for p in (result or {}).get("ports", [])
             if p["port"] == port]  # fmt: skip
    _finish(result, code, as_json, found[0] if found else None)


@sandbox.command(name="network", cls=RunCommand)
@config_option
@_network_option
@_allow_option
@_json_option
@click.argument("sandbox_id", metavar="ID")
def network_command(config_files: tuple[str, ...], network: str | None, allow: tuple[str, ...],
                    as_json: bool, sandbox_id: str) -> None:  # fmt: skip
    """Change a running sandbox's network policy now (it must have been created with
    `--network allow` or `open`; `--network allow` alone: nothing reachable)."""
    if network is None and not allow:
        raise RunUsageError("give the new policy: --network allow|open and/or --allow ...")
    args = {"id": sandbox_id, "network": network, "allow": list(allow) if allow else None}
    result, code = _call("network", args, config_files)
    _finish(result, code, as_json, sandbox_id)


@sandbox.command(name="ls")
@config_option
@click.option("--pool", default=None, help="Only this pool.")
@click.option("-l", "--label", multiple=True, metavar="K=V", help="Only with this label.")
@click.option("--state", default=None, help="Only in this state (running, paused, …).")
@click.option("--warm", is_flag=True, help="The warm sandboxes (not claimed yet) instead.")
@_json_option
def list_sandboxes(config_files: tuple[str, ...], pool: str | None, label: tuple[str, ...],
                   state: str | None, warm: bool, as_json: bool) -> None:  # fmt: skip
    """List the server's sandboxes (`--warm`: those its warm pools hold ready)."""
    args = {"pool": pool, "labels": _labels(label), "state": "warm" if warm else state}
    result, code = _call("ls", args, config_files)
    if as_json or code != 0:
        _finish(result, code, as_json)
    click.echo(f"{'ID':<28} {'POOL':<14} {'STATE':<12} {'REASON':<7} {'EXPIRES':<25} LABELS")
    for row in result or []:
        labels = ",".join(f"{k}={v}" for k, v in row["labels"].items())
        click.echo(f"{row['id']:<28} {row['pool']:<14} {row['state']:<12} "
                   f"{row['reason'] or '-':<7} {row['expiresAt'] or '-':<25} {labels}")  # fmt: skip


def _by_id_command(op: str, name: str, summary: str) -> None:
    @sandbox.command(name=name, help=summary)
    @config_option
    @click.argument("ids", nargs=-1, required=True, metavar="ID...")
    @_json_option
    def command(config_files: tuple[str, ...], ids: tuple[str, ...], as_json: bool) -> None:
        worst, results = 0, []
        for sandbox_id in ids:
            result, code = _call(op, {"id": sandbox_id}, config_files)
            worst = worst or code
            if code == 0 and result is not None:
                results.append(result)
                if not as_json:
                    click.echo(sandbox_id if op != "get" else json.dumps(result, indent=2))
        if as_json:
            click.echo(json.dumps(results[0] if len(ids) == 1 and results else results))
        sys.exit(worst)


_by_id_command("get", "inspect", "Show sandboxes' state.")
_by_id_command("pause", "pause", "Freeze sandboxes (their TTL keeps running).")
_by_id_command("resume", "resume", "Thaw paused sandboxes.")
_by_id_command("rm", "rm", "Terminate sandboxes and remove everything they held.")


@sandbox.command(name="exec", cls=RunCommand,  # bad flags: 125, as for `sandpool run`
                 context_settings={"allow_interspersed_args": False})  # fmt: skip
@config_option
@click.option("-i", "--interactive", is_flag=True, help="Pass this process's stdin on.")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Extra environment.")
@click.option("-w", "--workdir", default=None, help="Working directory.")
@click.option("-u", "--user", default=None, help="User (name or uid[:gid]).")
@click.option("--timeout", type=Number(TIMEOUT_RANGE, "seconds"), default=None,
              help="Seconds before it is killed (124).")  # fmt: skip
@_json_option
@click.argument("sandbox_id", metavar="ID")
@click.argument("argv", nargs=-1, required=True, metavar="[--] COMMAND [ARGS]...")
def exec_command(config_files: tuple[str, ...], interactive: bool, env: tuple[str, ...],
                 workdir: str | None, user: str | None, timeout: float | None,
                 as_json: bool, sandbox_id: str, argv: tuple[str, ...]) -> None:  # fmt: skip
    """Run a command in a sandbox; exits with its status."""
    if argv[:1] == ("--",):  # `exec ID -- CMD`, as `sandpool run -- CMD` is written
        argv = argv[1:]
    if not argv:
        raise RunUsageError("no command given after the sandbox id")
    args = {"id": sandbox_id, "argv": list(argv), "env": list(env), "cwd": workdir,
            "user": user, "timeout": timeout, "stdin": interactive}  # fmt: skip
    result, code = _call("exec", args, config_files)
    _finish(result, code, as_json)


@sandbox.command()
@config_option
@_json_option
@click.argument("source")
@click.argument("destination")
def cp(config_files: tuple[str, ...], as_json: bool, source: str, destination: str) -> None:
    """Copy a file: `cp FILE ID:PATH` into a sandbox, `cp ID:PATH FILE` out of it
    (`-` is stdin / stdout)."""
    inside_src, inside_dst = _split(source), _split(destination)
    if (inside_src is None) == (inside_dst is None):
        raise click.UsageError("exactly one of SOURCE and DESTINATION must be ID:PATH")
    if inside_dst is not None:
        args = {"direction": "in", "id": inside_dst[0], "path": inside_dst[1],
                "host": _host(source)}  # fmt: skip
    else:
        assert inside_src is not None
        args = {"direction": "out", "id": inside_src[0], "path": inside_src[1],
                "host": _host(destination)}  # fmt: skip
    result, code = _call("cp", args, config_files)
    _finish(result, code, as_json)


def _split(arg: str) -> tuple[str, str] | None:
    head, sep, path = arg.partition(":")
    return (head, path) if sep and head.startswith("sp-") and path else None


def _host(path: str) -> str:
    return path if path == "-" else os.path.abspath(path)
