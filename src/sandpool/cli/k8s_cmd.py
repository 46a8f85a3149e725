"""``sandpool k8s``: render the worker pools' Kubernetes objects, or apply them to a cluster."""

from __future__ import annotations

import click

from sandpool.cli.options import config_option, load, pool_option

__all__ = ["k8s"]


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group()
def k8s() -> None:
    """Run the worker pools on Kubernetes: one worker Job per pool in mode: local."""


@k8s.command()
@config_option
@pool_option
@click.option(
    "--runtimeclasses",
    is_flag=True,
    help="Also print a RuntimeClass (handler = name) for every pod runtime the pools name.",
)
def render(config_files: tuple[str, ...], pool: str | None, runtimeclasses: bool) -> None:
    """Print the worker Jobs (and RuntimeClasses) as multi-document YAML."""
    from sandpool.controller.manifests import local_pools, render_manifests, to_yaml
    from sandpool.controller.preflight import gpu_warnings

    loaded = load(config_files)
    objects = render_manifests(loaded, pool, runtime_classes=runtimeclasses)
    for warning in gpu_warnings(local_pools(loaded, pool)):
        _warn(warning)
    click.echo(to_yaml(objects), nl=False)


@k8s.command()
@config_option
@pool_option
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing to the cluster.")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the kubeconfig's).")
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig file (default: in-cluster config, $KUBECONFIG, ~/.kube/config).",
)
def apply(
    config_files: tuple[str, ...],
    pool: str | None,
    dry_run: bool,
    namespace: str | None,
    kubeconfig: str | None,
) -> None:
    """Check the cluster has every RuntimeClass the pools name, then create or update the Jobs."""
    from sandpool.controller.apply import apply_pools
    from sandpool.controller.cluster import Cluster

    loaded = load(config_files)
    cluster = Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    try:
        applied = apply_pools(loaded, cluster, pool, dry_run=dry_run, warn=_warn)
    finally:
        cluster.close()
    for item in applied:
        click.echo(item.line(cluster.namespace))
