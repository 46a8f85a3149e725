"""``sandpool k8s``: render the deployment (gateway, stores, worker pools), or apply it."""

from __future__ import annotations

import click

from sandpool.cli.options import config_option, load, pool_option

__all__ = ["k8s"]


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group()
def k8s() -> None:
    """Run sandpool on Kubernetes: the gateway, Redis, PostgreSQL and one worker Deployment
    per pool in mode: local."""


@k8s.command()
@config_option
@pool_option
@click.option(
    "--runtimeclasses",
    is_flag=True,
    help="Also print a RuntimeClass (handler = name) for every pod runtime the pools name.",
)
@click.option(
    "--no-secret",
    is_flag=True,
    help="Leave out the Secret (keep the one a cluster has: re-rendering makes new keys).",
)
def render(
    config_files: tuple[str, ...], pool: str | None, runtimeclasses: bool, no_secret: bool
) -> None:
    """Print the deployment (or one pool's workers) as multi-document YAML."""
    from sandpool.controller.credentials import credentials
    from sandpool.controller.manifests import local_pools, render_manifests, to_yaml
    from sandpool.controller.preflight import gpu_warnings

    loaded = load(config_files)
    secret = None if no_secret or pool else credentials(loaded.model)
    objects = render_manifests(loaded, pool, runtime_classes=runtimeclasses, secret=secret)
    for warning in gpu_warnings(local_pools(loaded, pool)):
        _warn(warning)
    if secret is not None:
        _warn("the Secret sandpool-secrets holds newly made keys and passwords; re-applying a "
              "new render replaces them: render again with --no-secret, or use `k8s apply`, "
              "which keeps a cluster's")  # fmt: skip
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
    """Check the cluster has every RuntimeClass the pools name, then create or update every
    object (with --pool, only that pool's workers). The Secret keeps the keys it has."""
    from sandpool.controller.apply import apply_deployment
    from sandpool.controller.cluster import Cluster

    loaded = load(config_files)
    cluster = Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    try:
        applied = apply_deployment(loaded, cluster, pool, dry_run=dry_run, warn=_warn)
    finally:
        cluster.close()
    for item in applied:
        click.echo(item.line(cluster.namespace))
