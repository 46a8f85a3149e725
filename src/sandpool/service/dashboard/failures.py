"""Recent failures grouped by cause (OOM, timeouts, start failures, lost workers), each with
the runtime's message where there is one: from the sandbox records, the sandboxes this
server remembers and their execs, and the one-shot runs counted in ``/metrics``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from sandpool.errors import SandpoolError
from sandpool.service.apikeys import Principal
from sandpool.service.dashboard.source import DashboardSource
from sandpool.service.dashboard.words import CAUSES, Cause

__all__ = ["Failure", "FailureGroup", "recent_failures", "run_failures"]

_RECORD_CAUSES = {"oom": "oom", "error": "start", "worker_lost": "worker_lost"}


@dataclass(frozen=True)
class Failure:
    """One failure: where (sandbox and exec, or a pool), when, and the message."""

    pool: str
    sandbox_id: str | None
    what: str
    at: float
    message: str = ""


@dataclass
class FailureGroup:
    """The failures of one cause, newest first."""

    cause: Cause
    items: list[Failure] = field(default_factory=list)


def recent_failures(source: DashboardSource, viewer: Principal) -> list[FailureGroup]:
    """Every cause's group (empty ones too), for what ``viewer`` may see."""
    groups = {cause.key: FailureGroup(cause) for cause in CAUSES}
    seen: set[tuple[str, str]] = set()
    for info in source.scoped_infos(viewer):
        if info.oom_kills:
            _add(groups, seen, "oom", Failure(info.pool, info.id, f"{info.oom_kills} OOM kill(s)",
                                              info.ended_at or info.last_activity))  # fmt: skip
        if info.reason is not None and info.reason.value == "error":
            _add(groups, seen, "start", Failure(info.pool, info.id, "sandbox failed",
                                                info.ended_at or info.created_at,
                                                info.error or ""))  # fmt: skip
        _exec_failures(source, info.id, info.pool, groups, seen)
    tenant_id = viewer.tenant.id if viewer.tenant is not None else None
    for record in source.listing.ended_with(tuple(_RECORD_CAUSES), tenant_id):
        head, _, message = (record.reason or "").partition(":")
        cause = _RECORD_CAUSES[head.strip()]
        _add(groups, seen, cause, Failure(record.pool, record.id, f"sandbox {record.state}",
                                          record.ended_at or record.created_at,
                                          message.strip()))  # fmt: skip
    for group in groups.values():
        group.items.sort(key=lambda f: f.at, reverse=True)
    return list(groups.values())


def _add(groups: dict[str, FailureGroup], seen: set[tuple[str, str]], cause: str,
         failure: Failure) -> None:  # fmt: skip
    key = (cause, f"{failure.sandbox_id}/{failure.what}")
    if key not in seen:
        seen.add(key)
        groups[cause].items.append(failure)


def _exec_failures(
    source: DashboardSource,
    sandbox_id: str,
    pool: str,
    groups: dict[str, FailureGroup],
    seen: set[tuple[str, str]],
) -> None:
    manager = source.manager()
    if manager is None:
        return
    with contextlib.suppress(SandpoolError):
        for summary in manager.execs(sandbox_id):
            result, argv = summary.result, " ".join(summary.argv)
            if result is None:
                continue
            if result.oom_killed:
                _add(groups, seen, "oom", Failure(pool, sandbox_id, f"exec `{argv}`",
                                                  result.finished_at, "exit 137"))  # fmt: skip
            if result.timed_out:
                _add(groups, seen, "timeout", Failure(pool, sandbox_id, f"exec `{argv}`",
                                                      result.finished_at,
                                                      f"exit {result.exit_code}"))  # fmt: skip


def run_failures(source: DashboardSource) -> dict[str, dict[str, int]]:
    """One-shot runs that ended in oom, timeout or error, by pool (``sandpool_runs``)."""
    found: dict[str, dict[str, int]] = {}
    for metric in source.context.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name != "sandpool_runs_total":
                continue
            kind = sample.labels.get("exit_class", "")
            if kind in ("oom", "timeout", "error") and sample.value:
                found.setdefault(sample.labels["pool"], {})[kind] = int(sample.value)
    return found
