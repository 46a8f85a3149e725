"""Where the dashboard's pages read from and act through: the store's sandbox records (the
tenant's, or every tenant's for the admin) joined with the live sandboxes of this server's
``SandboxManager``. The one adapter between the pages and the core: the pages never touch
the store or the manager themselves.

Actions (terminate, pause, resume) go through the server's ``SandboxBackend``, the one the
API routes call: the local ``SandboxService``, or on a gateway (``sandpool server --redis``)
``RemoteSandboxes``, which has the worker holding the sandbox do it. A gateway runs no
sandboxes itself (``manager()`` is None): its live counts come from the records, a
sandbox's live view and usage from its worker (``dashboard.remote``).

Thread-safe (the store and the manager are); the pages call it from worker threads."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sandpool.errors import NotFound, SandpoolError
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import ExecSummary, SandboxInfo
from sandpool.sandbox.usage import SandboxUsage, read_usage
from sandpool.service.apikeys import Principal
from sandpool.service.context import ServiceContext
from sandpool.service.dashboard.exec_output import ExecOutput, exec_snapshot
from sandpool.service.dashboard.remote import live_counts, remote_detail, remote_exec_output
from sandpool.service.dashboard.words import reason_in_words
from sandpool.store.records import SandboxRecord
from sandpool.store.sandbox_listing import SandboxFilter, SandboxListing, SandboxPage, tenants_of

__all__ = ["ACTIONS", "DashboardSource", "ExecOutput", "SandboxDetail", "SandboxRow"]

ACTIONS = ("terminate", "pause", "resume")


@dataclass(frozen=True)
class SandboxRow:
    """One sandbox as the list shows it (the record, its state fresher from the manager)."""

    id: str
    tenant: str
    pool: str
    image: str
    state: str
    reason: str | None
    labels: dict[str, str]
    created_at: float
    ended_at: float | None

    @property
    def reason_words(self) -> str:
        """Why it is in its state, in words."""
        return reason_in_words(self.reason)


@dataclass(frozen=True)
class SandboxDetail:
    """One sandbox's page: its row, what the manager knows, its execs and usage."""

    row: SandboxRow
    info: SandboxInfo | None
    execs: list[ExecSummary] = field(default_factory=list)
    usage: SandboxUsage | None = None


class DashboardSource:
    """The dashboard's reads and actions for one server (see the module docstring)."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.listing = SandboxListing(context.store.engine)

    # ---- the live side -----------------------------------------------------------------

    def manager(self) -> SandboxManager | None:
        """This server's sandbox manager (None for an executor without one, as in tests)."""
        sandpool = getattr(self.context.runs.executor, "sandpool", None)
        if sandpool is None or self.context.stopping:
            return None
        manager = sandpool.sandboxes
        assert isinstance(manager, SandboxManager)
        return manager

    def infos(self) -> list[SandboxInfo]:
        """Every sandbox the manager knows (live, then recently ended)."""
        manager = self.manager()
        return [] if manager is None else manager.list()

    def scoped_infos(self, viewer: Principal) -> list[SandboxInfo]:
        """The manager's sandboxes ``viewer`` may see (a tenant: those recorded as its own)."""
        infos = self.infos()
        if viewer.tenant is None:
            return infos
        owners = tenants_of(self.context.store.engine, [i.id for i in infos])
        return [i for i in infos if owners.get(i.id) == viewer.tenant.id]

    def counts_by_tenant(self) -> Counter[tuple[str, str]]:
        """(tenant id or '', state) -> live sandboxes now (the history sampler's figure)."""
        if self.remote:
            return Counter({(t, s): n for (t, _, s), n in live_counts(self.context).items()})
        infos = self.infos()
        owners = tenants_of(self.context.store.engine, [i.id for i in infos])
        return Counter((owners.get(i.id, ""), i.state.value) for i in infos)

    @property
    def remote(self) -> bool:
        """Whether workers run the sandboxes (a gateway): no manager here, a backend."""
        return self.manager() is None and self.context.sandboxes is not None

    def remote_counts(self) -> Counter[tuple[str, str]] | None:
        """(pool, state) -> sandboxes the workers run, on a gateway (None elsewhere)."""
        if not self.remote:
            return None
        found: Counter[tuple[str, str]] = Counter()
        for (_, pool, state), n in live_counts(self.context).items():
            found[pool, state] += n
        return found

    def counts_by_pool(self, viewer: Principal) -> Counter[tuple[str, str]]:
        """(pool, state) -> the viewer's live sandboxes (not terminated) now."""
        if self.remote:
            tenant_id = viewer.tenant.id if viewer.tenant is not None else None
            found: Counter[tuple[str, str]] = Counter()
            for (tenant, pool, state), n in live_counts(self.context).items():
                if tenant_id is None or tenant == tenant_id:
                    found[pool, state] += n
            return found
        return Counter((i.pool, i.state.value) for i in self.scoped_infos(viewer)
                       if i.state.value != "terminated")  # fmt: skip

    # ---- sandboxes ---------------------------------------------------------------------

    def tenant_names(self) -> dict[str, str]:
        """Tenant id -> name."""
        return {t.id: t.name for t in self.context.store.tenants.list()}

    def page(self, viewer: Principal, wanted: SandboxFilter, offset: int,
             limit: int) -> tuple[list[SandboxRow], SandboxPage]:  # fmt: skip
        """One page of the sandboxes ``viewer`` may see, matching ``wanted``."""
        tenant_id = viewer.tenant.id if viewer.tenant is not None else wanted.tenant_id
        scoped = SandboxFilter(tenant_id, wanted.pool, wanted.state, wanted.label)
        found = self.listing.page(scoped, offset, limit)
        names = self.tenant_names()
        live = {i.id: i for i in self.infos()}
        return [self._row(r, names, live.get(r.id)) for r in found.records], found

    def _row(self, record: SandboxRecord, names: dict[str, str],
             info: SandboxInfo | None) -> SandboxRow:  # fmt: skip
        state, reason = record.state, record.reason
        if info is not None:
            state = info.state.value
            reason = info.reason.value if info.reason else reason
        return SandboxRow(record.id, names.get(record.tenant_id, record.tenant_id), record.pool,
                          record.image or (info.image if info else ""), state, reason,
                          dict(record.labels), record.created_at,
                          info.ended_at if info and info.ended_at else record.ended_at)  # fmt: skip

    def record(self, viewer: Principal, sandbox_id: str) -> SandboxRecord:
        """The record, or NotFound (also for another tenant's: never say it exists)."""
        tenant_id = viewer.tenant.id if viewer.tenant is not None else None
        record = self.listing.get(sandbox_id, tenant_id)
        if record is None:
            raise NotFound(f"no sandbox with id '{sandbox_id}'",
                           hint="the sandboxes page lists yours")  # fmt: skip
        return record

    def _info(self, sandbox_id: str) -> SandboxInfo | None:
        manager = self.manager()
        if manager is None:
            return None
        with contextlib.suppress(SandpoolError):
            return manager.get(sandbox_id)
        return None

    def detail(self, viewer: Principal, sandbox_id: str) -> SandboxDetail:
        """One sandbox's page data."""
        record = self.record(viewer, sandbox_id)
        if self.remote and self.context.sandboxes is not None:
            view = remote_detail(self.context.sandboxes, record)
            row = self._row(record, self.tenant_names(), view.info)
            return SandboxDetail(row, view.info, view.execs, view.usage)
        info = self._info(sandbox_id)
        row = self._row(record, self.tenant_names(), info)
        manager = self.manager()
        if info is None or manager is None or info.state.value == "terminated":
            return SandboxDetail(row, info)
        execs: list[ExecSummary] = []
        with contextlib.suppress(SandpoolError):
            execs = manager.execs(sandbox_id)
        usage = read_usage(Path(self.context.config.state_dir), sandbox_id)
        return SandboxDetail(row, info, execs, usage)

    def exec_output(self, viewer: Principal, sandbox_id: str, exec_id: str) -> ExecOutput:
        """What the exec wrote so far (the end of each stream), without waiting."""
        record = self.record(viewer, sandbox_id)
        manager = self.manager()
        if manager is not None:
            return exec_snapshot(manager, sandbox_id, exec_id)
        if self.remote and self.context.sandboxes is not None:
            found = remote_exec_output(self.context.sandboxes, record, exec_id)
            if found is not None:
                return found
        raise NotFound(f"no output of exec '{exec_id}' here",
                       hint="its sandbox has ended, or its worker does not answer")  # fmt: skip

    def act(self, viewer: Principal, sandbox_id: str, action: str) -> SandboxRecord:
        """Terminate, pause or resume the sandbox through the server's backend (as the API
        does: the record, the quota and, on a gateway, the worker kept in step)."""
        record = self.record(viewer, sandbox_id)
        if action not in ACTIONS:
            raise NotFound(f"no action '{action}'", hint=f"one of {', '.join(ACTIONS)}")
        backend = self.context.sandboxes
        tenant = self.context.store.tenants.by_id(record.tenant_id)
        if backend is None or tenant is None:
            raise NotFound(f"sandbox {sandbox_id} is not run by this server",
                           hint="its tenant is gone, or this server runs no sandboxes")  # fmt: skip
        changed = getattr(backend, action)(tenant, sandbox_id)
        assert isinstance(changed, SandboxRecord)
        return changed
