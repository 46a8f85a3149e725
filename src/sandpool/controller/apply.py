"""``k8s apply``: render, preflight, then create or update each worker Job.

Nothing is written before every check has passed; a dry run only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lightkube.resources.batch_v1 import Job

from sandpool.config.loader import LoadedConfig
from sandpool.controller.jobs import render_worker_job
from sandpool.controller.manifests import local_pools
from sandpool.controller.preflight import check_runtime_classes, gpu_warnings

__all__ = ["Applied", "JobStore", "apply_pools"]


class JobStore(Protocol):
    """What ``apply_pools`` needs from a cluster (``cluster.Cluster`` provides it)."""

    @property
    def namespace(self) -> str: ...

    def runtime_class_exists(self, name: str) -> bool: ...

    def find_job(self, name: str) -> Job | None: ...

    def apply_job(self, job: Job) -> str: ...


@dataclass(frozen=True)
class Applied:
    """What happened (or would happen) to one object."""

    kind: str
    name: str
    action: str

    def line(self, namespace: str) -> str:
        """``job.batch/sandpool-worker-x created (namespace n)``, kubectl-style."""
        return f"{self.kind}/{self.name} {self.action} (namespace {namespace})"


def apply_pools(
    loaded: LoadedConfig,
    cluster: JobStore,
    only: str | None = None,
    *,
    dry_run: bool = False,
    warn: Callable[[str], None] = lambda _: None,
) -> list[Applied]:
    """Render every local pool's Job, run the preflight, then apply (or, dry, only look)."""
    pools = local_pools(loaded, only)
    jobs = [render_worker_job(loaded, pool.name) for pool in pools]  # config errors first
    for warning in gpu_warnings(pools):
        warn(warning)
    check_runtime_classes(pools, cluster.runtime_class_exists)
    applied = []
    for job in jobs:
        name = str(job.metadata.name) if job.metadata else ""
        if dry_run:
            exists = cluster.find_job(name) is not None
            action = "would be updated (dry run)" if exists else "would be created (dry run)"
        else:
            action = cluster.apply_job(job)
        applied.append(Applied("job.batch", name, action))
    return applied
