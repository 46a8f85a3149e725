"""The dashboard without containers: sign-in and sessions, tenant scoping of the records,
paging and filters, and the charts' markup (the browser tests run real sandboxes)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from sandpool.sandbox.models import SandboxInfo, SandboxState
from sandpool.service.dashboard.charts import bar_chart, grouped_bars, line_chart
from sandpool.service.dashboard.figures import start_histogram
from sandpool.service.dashboard.session import SessionBook
from sandpool.store import SandboxRecord
from sandpool.store.sandbox_listing import SandboxFilter, SandboxListing
from tests.unit.service.conftest import ADMIN, Api

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _records(api: Api, tenant: str, count: int, **fields: object) -> list[str]:
    tenant_id = api.context.store.tenants.by_name(tenant).id
    now, ids = time.time(), []
    for i in range(count):
        ident = f"{tenant}-{i:03d}"
        api.context.store.sandboxes.add(SandboxRecord(
            id=ident, tenant_id=tenant_id, pool="default", state="running",
            created_at=now - i, labels={"n": str(i % 3)}, **fields))  # type: ignore[arg-type]  # fmt: skip
        ids.append(ident)
    return ids


def _sign_in(api: Api, headers: dict[str, str]) -> None:
    key = headers["Authorization"].removeprefix("Bearer ")
    answer = api.http.post("/dashboard/login", content=f"key={key}&next=/dashboard/sandboxes",
                           headers=FORM, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/sandboxes"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie


def test_a_page_without_a_session_sends_to_the_login_page(api: Api) -> None:
    answer = api.http.get("/dashboard/sandboxes?state=running", follow_redirects=False)
    assert answer.status_code == 303
    assert (
        answer.headers["location"] == "/dashboard/login?next=/dashboard/sandboxes%3Fstate%3Drunning"
    )
    bad = api.http.post("/dashboard/login", content="key=sp_x_y", headers=FORM)
    assert bad.status_code == 401 and "unknown API key" in bad.text


def test_a_session_sees_only_its_tenants_records_and_the_admin_all(api: Api) -> None:
    acme, globex = api.tenant("acme"), api.tenant("globex")
    mine, theirs = _records(api, "acme", 3), _records(api, "globex", 2)
    _sign_in(api, acme)
    page = api.http.get("/dashboard/sandboxes")
    assert all(i in page.text for i in mine) and not any(i in page.text for i in theirs)
    hidden = api.http.get(f"/dashboard/sandboxes/{theirs[0]}")
    assert hidden.status_code == 404 and "no sandbox with id" in hidden.text
    assert api.http.get(f"/dashboard/sandboxes/{mine[0]}").status_code == 200
    everyone = api.http.get("/dashboard/sandboxes", headers=ADMIN)
    assert all(i in everyone.text for i in mine + theirs)
    assert globex  # its key exists, unused here


def test_a_revoked_key_ends_its_sessions(api: Api) -> None:
    acme = api.tenant("acme")
    _sign_in(api, acme)
    assert api.http.get("/dashboard/pools").status_code == 200
    key_id = api.http.get("/v1/me", headers=acme).json()["keyId"]
    assert api.http.delete(f"/v1/keys/{key_id}", headers=ADMIN).status_code == 200
    answer = api.http.get("/dashboard/pools", follow_redirects=False)
    assert answer.status_code == 303 and "/dashboard/login" in answer.headers["location"]


def test_login_never_redirects_off_the_dashboard(api: Api) -> None:
    key = api.tenant("acme")["Authorization"].removeprefix("Bearer ")
    answer = api.http.post("/dashboard/login", content=f"key={key}&next=https://evil.example/",
                           headers=FORM, follow_redirects=False)  # fmt: skip
    assert answer.headers["location"] == "/dashboard/pools"


def test_the_listing_pages_filters_and_counts(api: Api) -> None:
    api.tenant("acme"), api.tenant("globex")
    _records(api, "acme", 120)
    _records(api, "globex", 5)
    listing = SandboxListing(api.context.store.engine)
    acme_id = api.context.store.tenants.by_name("acme").id
    first = listing.page(SandboxFilter(tenant_id=acme_id), 0, 50)
    second = listing.page(SandboxFilter(tenant_id=acme_id), 50, 50)
    assert first.total == 120 and [r.id for r in first.records][:2] == ["acme-000", "acme-001"]
    assert second.records[0].id == "acme-050"
    assert listing.page(SandboxFilter(), 0, 10).total == 125
    labelled = listing.page(SandboxFilter(tenant_id=acme_id, label=("n", "1")), 0, 200)
    assert labelled.total == 40 and all(r.labels["n"] == "1" for r in labelled.records)
    assert listing.page(SandboxFilter(state="paused"), 0, 10).total == 0
    assert listing.get("globex-000", acme_id) is None


def test_state_reasons_are_in_words(api: Api) -> None:
    acme = api.tenant("acme")
    (ident,) = _records(api, "acme", 1, reason="idle")
    page = api.http.get(f"/dashboard/sandboxes/{ident}", headers=acme)
    assert "it was idle longer than its idle timeout" in page.text


def test_sessions_expire() -> None:
    book = SessionBook(max_age=0.05)
    token = book.open("sp_key")
    assert book.key_of(token) == "sp_key"
    time.sleep(0.1)
    assert book.key_of(token) is None and book.key_of(None) is None


def test_charts_are_well_formed_svg_with_escaped_names() -> None:
    charts = [line_chart([1.0, 2.0], {"<run>": [0, 2]}, "t"), line_chart([], {}, "t"),
              grouped_bars(["a", "b"], {"p&q": [1, 0]}, "t"), grouped_bars([], {}, "t"),
              bar_chart({"<x>": 3.0}, "t"), bar_chart({}, "t")]  # fmt: skip
    for chart in charts:
        root = ET.fromstring(str(chart))
        assert root.tag.endswith("svg")
    assert "&lt;run&gt;" in line_chart([1.0, 2.0], {"<run>": [0, 2]}, "t")


def test_start_latency_falls_in_its_bucket() -> None:
    info = SandboxInfo("sb", "default", "runc", None, "img", state=SandboxState.RUNNING,
                       created_at=100.0, ready_at=100.3)  # fmt: skip
    slow = SandboxInfo("sb2", "default", "runc", None, "img", state=SandboxState.RUNNING,
                       created_at=100.0, ready_at=160.0)  # fmt: skip
    assert start_histogram([info, slow])["default"] == [0, 0, 1, 0, 0, 0, 0, 1]


def test_network_bytes_are_exported_per_pool_and_direction() -> None:
    """/metrics carries the sandboxes' bytes in and out (none for a sandbox without network),
    and a run's bytes count once it ends."""
    from prometheus_client import CollectorRegistry, generate_latest

    from sandpool.service.dashboard.figures import SandboxCollector
    from sandpool.service.metrics import ServiceMetrics

    infos = [SandboxInfo("a", "web", "runc", None, "img", network_bytes_in=100,
                         network_bytes_out=40),
             SandboxInfo("b", "web", "runc", None, "img", network_bytes_in=5,
                         network_bytes_out=1),
             SandboxInfo("c", "quiet", "runc", None, "img")]  # fmt: skip
    registry = CollectorRegistry()
    registry.register(SandboxCollector(lambda: infos))
    text = generate_latest(registry).decode()
    assert 'sandpool_sandbox_network_bytes{direction="in",pool="web"} 105.0' in text
    assert 'sandpool_sandbox_network_bytes{direction="out",pool="web"} 41.0' in text
    assert 'sandpool_sandbox_network_bytes{direction="in",pool="quiet"} 0.0' in text
    metrics = ServiceMetrics()
    metrics.count_run("web", "ok", 7, 3)
    metrics.count_run("web", "ok", None, None)
    rendered = metrics.render().decode()
    assert 'sandpool_run_network_bytes_total{direction="in",pool="web"} 7.0' in rendered
    assert 'sandpool_runs_total{exit_class="ok",pool="web"} 2.0' in rendered


def test_a_gateway_lists_its_registered_workers(api: Api) -> None:
    """On a gateway (a dispatcher on the app, no sandbox manager) the workers page lists the
    registry's workers, and not the gateway itself (it runs no sandboxes): pool, address,
    capacity, heartbeat age, sandboxes held, state."""
    from types import SimpleNamespace

    from sandpool.dispatch.models import Resources, WorkerSpec, WorkerState

    class Registry:
        def workers(self) -> list[WorkerState]:
            cap = Resources(cpu=4000, memory=8 << 30, sandboxes=10)
            return [WorkerState("w-runc", WorkerSpec("performance", "http://10.0.0.5:9000", cap),
                                Resources(cpu=2000, memory=4 << 30, sandboxes=7)),
                    WorkerState("w-gone", WorkerSpec("default", "http://10.0.0.6:9000", cap,
                                                     container_runtime="runsc"),
                                cap, alive=False)]  # fmt: skip

        def heartbeat_ages(self, worker_ids: list[str]) -> dict[str, float | None]:
            return {"w-runc": 1.5, "w-gone": None}

    api.http.app.state.dispatcher = SimpleNamespace(broker=Registry())  # type: ignore[attr-defined]
    try:
        page = api.http.get("/dashboard/workers", headers=ADMIN).text
    finally:
        del api.http.app.state.dispatcher  # type: ignore[attr-defined]
    rows = page.split("<tr>")[2:]
    assert len(rows) == 2, page  # the two registered
    assert "w-runc" in rows[0] and "http://10.0.0.5:9000" in rows[0] and "performance" in rows[0]
    assert "4 cpus" in rows[0] and "2 s ago" in rows[0] and "<td>3</td>" in rows[0]
    assert "w-gone" in rows[1] and "lease ran out" in rows[1] and "lost" in rows[1]


def test_a_gateway_pools_health_is_its_workers() -> None:
    """A pool's health on a gateway: one check per registered worker of the pool (runtime
    check failed: fail, lease ran out: warn), a failed one when the pool has none."""
    from sandpool.dispatch.models import Resources, WorkerSpec, WorkerState
    from sandpool.doctor.report import Status
    from sandpool.service.dashboard.workers import pool_workers_diagnosis

    cap = Resources(cpu=4000, memory=8 << 30, sandboxes=10)

    class Registry:
        def workers(self) -> list[WorkerState]:
            return [WorkerState("w-up", WorkerSpec("performance", "http://a:1", cap), cap),
                    WorkerState("w-bad", WorkerSpec("performance", "http://b:1", cap,
                                                    runtime_ok=False), cap),
                    WorkerState("w-lost", WorkerSpec("default", "http://c:1", cap), cap,
                                alive=False)]  # fmt: skip

        def heartbeat_ages(self, worker_ids: list[str]) -> dict[str, float | None]:
            return dict.fromkeys(worker_ids, 1.0)

    runc = pool_workers_diagnosis(Registry(), "performance")
    assert [c.status for c in runc.checks] == [Status.OK, Status.FAIL]
    assert runc.status is Status.FAIL
    assert "sandpool doctor --pool performance" in (runc.checks[1].fix or "")
    assert pool_workers_diagnosis(Registry(), "default").status is Status.WARN
    empty = pool_workers_diagnosis(Registry(), "gpu")
    assert empty.status is Status.FAIL and "no worker of pool 'gpu'" in empty.checks[0].message
