"""``sandpool doctor``: check this host (and, with ``--kube``, the cluster) against the config."""

from __future__ import annotations

import json

import click

from sandpool.cli.options import Number, config_option, load, pool_option
from sandpool.doctor.kube import ClusterFactory, RuntimeClassLookup
from sandpool.doctor.probes import SMOKE_TIMEOUT, HostProbes
from sandpool.doctor.report import HOST, Check, exit_status, fail, render_text
from sandpool.errors import ConfigError, UnknownPool

__all__ = ["doctor"]


def _config_failure(error: ConfigError) -> Check:
    """A configuration that cannot be loaded, as the doctor's first (and only) line."""
    if isinstance(error, UnknownPool):
        return fail(HOST, "pool", error.message, error.hint or "pass a configured pool to --pool")
    fix = error.hint or "correct it; `sandpool config validate` lists every problem"
    return fail(HOST, "config", error.message, fix)


def _emit(checks: list[Check], status: int, as_json: bool) -> None:
    if as_json:
        body = {"ok": status == 0, "exitCode": status, "checks": [c.to_json() for c in checks]}
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(render_text(checks))


def _cluster_factory(kubeconfig: str | None) -> ClusterFactory:
    """Connect lazily, so that ``doctor`` without ``--kube`` never imports lightkube."""

    def connect() -> RuntimeClassLookup:
        from sandpool.controller.cluster import Cluster

        return Cluster.connect(kubeconfig=kubeconfig)

    return connect


@click.command()
@config_option
@pool_option
@click.option("--kube", is_flag=True, help="Also check the cluster: reachable, RuntimeClasses.")
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig for --kube (default: in-cluster, $KUBECONFIG, ~/.kube/config).",
)
@click.option(
    "--smoke-timeout",
    default=SMOKE_TIMEOUT,
    show_default=True,
    type=Number((0.5, 3600.0), "seconds"),
    metavar="SECONDS",
    help="How long the smoke test's container may take to start.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.pass_context
def doctor(
    ctx: click.Context,
    config_files: tuple[str, ...],
    pool: str | None,
    kube: bool,
    kubeconfig: str | None,
    smoke_timeout: float,
    as_json: bool,
) -> None:
    """Check each pool's runtime on this host (and the cluster); exit 1 if a check fails.

    One line per check and pool: ok, warn or fail, with the fix for every warn and fail.
    A configuration that cannot be loaded exits 2.
    """
    from sandpool.doctor.diagnose import diagnose

    cluster = _cluster_factory(kubeconfig) if kube else None
    try:
        loaded = load(config_files, quiet=True)  # its warnings become check lines
        checks = diagnose(
            loaded, pool, probes=HostProbes(smoke_timeout=smoke_timeout), cluster=cluster
        )
    except ConfigError as error:
        _emit([_config_failure(error)], error.exit_code, as_json)
        ctx.exit(error.exit_code)
    status = exit_status(checks)
    _emit(checks, status, as_json)
    ctx.exit(status)
