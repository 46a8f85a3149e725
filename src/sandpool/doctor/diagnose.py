"""The whole diagnosis: configuration, host, each pool's runtime, smoke test, GPU, cluster."""

from __future__ import annotations

from sandpool.config.loader import LoadedConfig
from sandpool.config.resolved import ResolvedConfig, ResolvedPool
from sandpool.doctor.disk import disk_check
from sandpool.doctor.gpu import gpu_checks
from sandpool.doctor.host import host_checks
from sandpool.doctor.kube import ClusterFactory, kube_checks
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import HOST, Check, fail, ok, warn
from sandpool.doctor.runtime_checks import runtime_checks
from sandpool.doctor.seccomp import seccomp_check
from sandpool.doctor.userns import userns_check

__all__ = ["config_checks", "diagnose", "pool_checks", "selected_pools"]


def config_checks(loaded: LoadedConfig) -> list[Check]:
    """The configuration loaded (it is valid, or loading raised); its warnings as warn lines."""
    sources = " + ".join(loaded.sources)
    count = len(loaded.resolved.pools)
    checks = [ok(HOST, "config", f"valid: {count} pool(s) from {sources}")]
    if not count:
        checks = [
            warn(
                HOST,
                "config",
                f"valid but defines no pools ({sources})",
                "add pools under worker.pools (see `sandpool explain`)",
            )
        ]
    for message in loaded.warnings:
        checks.append(warn(HOST, "config", message, "`sandpool config migrate FILE --write`"))
    return checks


def selected_pools(config: ResolvedConfig, only: str | None) -> list[ResolvedPool]:
    """Every pool, or just ``only`` (UnknownPool, with a did-you-mean, when it is not defined)."""
    return [config.pool(only)] if only is not None else list(config.pools.values())


def _describe(pool: ResolvedPool) -> str:
    runtime = pool.runtime or "cluster default"
    gpu = f", gpuType {pool.gpu_type}" if pool.gpu_type else ""
    return f"defined: containerRuntime {pool.container_runtime}, pod runtime {runtime}, " + (
        f"mode {pool.mode}{gpu}"
    )


def pool_checks(pool: ResolvedPool, config: ResolvedConfig, probes: HostProbes) -> list[Check]:
    """One pool: its runtime checks, the smoke test when they passed, then the GPU checks."""
    found = runtime_checks(pool, config, probes)
    checks = [ok(pool.name, "pool", _describe(pool)), *found.checks, seccomp_check(pool)]
    checks += [userns_check(pool, config, probes), disk_check(pool, probes)]
    if found.ready:
        checks.append(probes.smoke_test(pool, config, probes.smoke_timeout))
    else:
        reason = "not run: a runtime check above failed"
        checks.append(fail(pool.name, "smoke", reason, "fix the failed check above"))
    return checks + gpu_checks(pool, probes, found.info)


def diagnose(
    loaded: LoadedConfig,
    only: str | None = None,
    *,
    probes: HostProbes | None = None,
    cluster: ClusterFactory | None = None,
) -> list[Check]:
    """Every check, in the order printed; ``cluster`` given means ``--kube``."""
    probes = probes or HostProbes()
    config = loaded.resolved
    pools = selected_pools(config, only)
    checks = config_checks(loaded) + host_checks(config, probes)
    for pool in pools:
        checks += pool_checks(pool, config, probes)
    if cluster is not None:
        checks += kube_checks(pools, cluster)
    return checks
