"""The dashboard in a real headless Chromium (Selenium + Debian's chromium-driver), against a
real server (uvicorn on a loopback port, in a thread of this process so that the test can
start real runc sandboxes in it the way the sandbox routes will) with real data: two tenants,
their sandboxes, an exec whose output must appear while it runs, an action, 1,000 records.

``SANDPOOL_DASHBOARD_SCREENSHOTS=1`` saves each page's screenshot under docs/dashboard/."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from sandpool.config.loader import LoadedConfig
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import ExecRequest, SandboxRequest
from sandpool.service.apikeys import new_key
from sandpool.service.app import create_app
from sandpool.service.context import ServiceContext
from sandpool.service.server import bind, build_context
from sandpool.store import TENANT, ApiKeyRecord, SandboxRecord
from tests.integration.conftest import Sandbox

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.root,
    pytest.mark.runc,
    pytest.mark.skipif(not os.path.exists(CHROMEDRIVER),
                       reason="chromium-driver not installed (./setup.sh installs it)"),
]  # fmt: skip
ADMIN_KEY = "sp_dashboardtestadmin_0123456789abcdef"
SHOTS = Path(__file__).parents[3] / "docs" / "dashboard"
WIDTH, HEIGHT = 1440, 900


@dataclass
class Running:
    """The server under test and what the tests need of it."""

    url: str
    context: ServiceContext
    manager: SandboxManager
    keys: dict[str, str]  # tenant name -> API key
    tenant_ids: dict[str, str]


def _tenant(context: ServiceContext, name: str) -> tuple[str, str]:
    tenant = context.store.tenants.create(name)
    key = new_key()
    context.store.keys.add(ApiKeyRecord(key.id, tenant.id, TENANT, key.secret_sha256, "dash",
                                        time.time()))  # fmt: skip
    return tenant.id, key.text


def start_sandbox(running: Running, tenant: str, pool: str = "performance",
                  labels: tuple[tuple[str, str], ...] = ()) -> str:  # fmt: skip
    """A real sandbox in the server's manager, created as the routes create it (the tenant's
    quota lease and store record kept by the server's sandbox service)."""
    service = running.context.sandboxes
    assert service is not None
    owner = running.context.store.tenants.by_name(tenant)
    return service.create(owner, SandboxRequest(pool=pool, labels=labels)).id


@pytest.fixture(scope="module")
def running(service_box: Sandbox) -> Iterator[Running]:
    loaded = LoadedConfig.load([str(service_box.config_file)], {})
    context = build_context(loaded, environ={"SANDPOOL_ADMIN_KEY": ADMIN_KEY})
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(create_app(context), lifespan="on", log_config=None,
                            access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    acme, globex = _tenant(context, "acme"), _tenant(context, "globex")
    manager = context.runs.executor.sandpool.sandboxes  # type: ignore[attr-defined]
    yield Running(url, context, manager, {"acme": acme[1], "globex": globex[1]},
                  {"acme": acme[0], "globex": globex[0]})  # fmt: skip
    server.should_exit = True  # the lifespan's end terminates the sandboxes
    thread.join(60)
    sock.close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}"):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def sign_in(driver: WebDriver, running: Running, key: str) -> None:
    driver.get(f"{running.url}/dashboard")
    assert "/dashboard/login" in driver.current_url  # no session: the login page
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 20).until(lambda d: "/dashboard/pools" in d.current_url)


def console_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shoot(driver: WebDriver, name: str) -> None:
    """A desktop-width screenshot of the whole page (saved only when asked)."""
    if os.environ.get("SANDPOOL_DASHBOARD_SCREENSHOTS") != "1":
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(HEIGHT, int(height) + 20))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(WIDTH, HEIGHT)


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def test_every_page_renders_real_data_without_console_errors(
    running: Running, browser: WebDriver
) -> None:
    mine = start_sandbox(running, "acme", labels=(("job", "7"),))
    sign_in(browser, running, running.keys["acme"])
    cookie = browser.get_cookie("sandpool_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    pools = text_of(browser, "pools")
    assert "performance" in pools and "runc" in pools and "gvisor" in pools
    assert "running 1" in pools  # acme's live sandbox, counted in its pool
    WebDriverWait(browser, 120).until(  # the doctor's checks (a real smoke container per pool)
        lambda d: "checking" not in d.find_element(By.ID, "pools").text
    )
    assert re.search(r"\b(ok|warn|fail)\b", text_of(browser, "pools"))
    assert browser.find_element(By.CSS_SELECTOR, "#chart-latency svg rect[fill]")
    shoot(browser, "pools")
    browser.find_element(By.LINK_TEXT, "Workers").click()
    assert "performance" in text_of(browser, "workers")
    shoot(browser, "workers")
    browser.find_element(By.LINK_TEXT, "Sandboxes").click()
    assert mine in text_of(browser, "sandboxes")
    browser.find_element(By.LINK_TEXT, mine).click()
    assert text_of(browser, "state") == "running" and "Memory peak" in text_of(browser, "usage")
    browser.find_element(By.LINK_TEXT, "Failures").click()
    assert "Out of memory" in browser.page_source and "Start failures" in browser.page_source
    assert console_errors(browser) == []


def exec_view(driver: WebDriver, selector: str) -> tuple[str, str]:
    """(data-done, text) of an exec's output element, read in one script (no stale handle)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return e ? [e.dataset.done, e.innerText] : ['', ''];", selector)  # fmt: skip
    return str(found[0]), str(found[1])


def test_live_output_appears_while_the_exec_runs(running: Running, browser: WebDriver) -> None:
    box = start_sandbox(running, "acme")
    argv = ("sh", "-c", "echo first-line; sleep 12; echo second-line; exit 3")
    sign_in(browser, running, running.keys["acme"])
    exec_id = running.manager.exec_start(box, ExecRequest(argv=argv))
    browser.get(f"{running.url}/dashboard/sandboxes/{box}")
    selector = f"#exec-{exec_id} .output"
    WebDriverWait(browser, 20).until(lambda d: "first-line" in exec_view(d, selector)[1])
    done, text = exec_view(browser, selector)  # one read: htmx swaps the element each second
    assert done == "no" and "second-line" not in text  # seen while it still runs
    shoot(browser, "sandbox")
    WebDriverWait(browser, 40).until(lambda d: exec_view(d, selector)[0] == "yes")
    done, text = exec_view(browser, selector)
    assert "second-line" in text and "exit 3" in text
    assert console_errors(browser) == []


def test_pause_resume_and_terminate_after_confirmation(running: Running,
                                                       browser: WebDriver) -> None:  # fmt: skip
    box = start_sandbox(running, "acme")
    sign_in(browser, running, running.keys["acme"])
    for action, state in (("pause", "paused"), ("resume", "running"),
                          ("terminate", "terminated")):  # fmt: skip
        browser.get(f"{running.url}/dashboard/sandboxes/{box}")
        browser.find_element(By.ID, action).click()
        assert f"{action.capitalize()} sandbox" in browser.find_element(By.TAG_NAME, "h1").text
        assert running.manager.get(box).state != state or action == "resume"  # not yet done
        browser.find_element(By.ID, "confirm").click()
        WebDriverWait(browser, 30).until(lambda d, s=state: text_of(d, "state") == s)
        assert running.manager.get(box).state == state
    record = running.context.store.sandboxes.get(running.tenant_ids["acme"], box)
    assert record is not None and record.state == "terminated" and record.reason == "killed"
    assert "terminated on request" in text_of(browser, "reason")
    with httpx.Client(base_url=running.url) as http:  # the wrong state: 409, in words
        again = http.post(f"/dashboard/sandboxes/{box}/pause",
                          headers={"Authorization": f"Bearer {running.keys['acme']}"})  # fmt: skip
        assert again.status_code == 409 and "is terminated" in again.text
    assert console_errors(browser) == []


def test_a_tenant_sees_only_its_own_sandboxes(running: Running, browser: WebDriver) -> None:
    theirs = start_sandbox(running, "globex")
    sign_in(browser, running, running.keys["acme"])
    browser.get(f"{running.url}/dashboard/sandboxes")
    assert theirs not in browser.page_source
    for path in (f"sandboxes/{theirs}", f"sandboxes/{theirs}/terminate"):
        browser.get(f"{running.url}/dashboard/{path}")
        assert f"no sandbox with id '{theirs}'" in browser.page_source
    with httpx.Client(base_url=running.url) as http:  # Bearer works on every page too
        acme = {"Authorization": f"Bearer {running.keys['acme']}"}
        refused = http.post(f"/dashboard/sandboxes/{theirs}/terminate", headers=acme)
        assert refused.status_code == 404
        own = http.get("/dashboard/sandboxes",
                       headers={"Authorization": f"Bearer {running.keys['globex']}"})  # fmt: skip
        assert own.status_code == 200 and theirs in own.text
    assert running.manager.get(theirs).state == "running"
    # the 404s asked for above are the only errors the browser saw
    assert [e for e in console_errors(browser) if "status of 404" not in e] == []


def test_a_thousand_sandboxes_listed_a_page_at_a_time_under_300_ms(
    running: Running, browser: WebDriver
) -> None:
    now = time.time()
    for i in range(1000):
        running.context.store.sandboxes.add(SandboxRecord(
            id=f"bulk-{i:04d}", tenant_id=running.tenant_ids["globex"], pool="default",
            state="terminated", reason="ttl" if i % 2 else "oom", created_at=now - i,
            labels={"batch": str(i % 10)}))  # fmt: skip
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=running.url, headers=admin) as http:
        http.get("/dashboard/sandboxes")  # warm (templates compiled once)
        timings = []
        for page in (1, 2, 20):
            answer = http.get("/dashboard/sandboxes", params={"page": page})
            assert answer.status_code == 200
            timings.append(float(answer.headers["server-timing"].split("dur=")[1]))
        assert "bulk-0000" in http.get("/dashboard/sandboxes").text  # newest first
        assert "bulk-0050" in http.get("/dashboard/sandboxes", params={"page": 2}).text
        labelled = http.get("/dashboard/sandboxes", params={"label": "batch=3", "tenant": "globex"})
        assert ">100<" in labelled.text and "bulk-0003" in labelled.text
        failures = http.get("/dashboard/failures")
        assert failures.status_code == 200 and "bulk-0000" in failures.text  # oom, newest
    print(f"dashboard sandboxes page with 1000+ records, server-side ms: {timings}")
    assert max(timings) < 300, timings
    sign_in(browser, running, ADMIN_KEY)  # the admin's view of them, in the browser
    browser.get(f"{running.url}/dashboard/sandboxes")
    assert int(text_of(browser, "total")) >= 1000 and "globex" in text_of(browser, "sandboxes")
    shoot(browser, "sandboxes")
    browser.find_element(By.ID, "next").click()
    assert "bulk-0050" in text_of(browser, "sandboxes")
    browser.get(f"{running.url}/dashboard/failures")
    assert "bulk-0000" in text_of(browser, "cause-oom")
    shoot(browser, "failures")
    assert console_errors(browser) == []


def test_without_a_session_the_pages_ask_to_sign_in(running: Running,
                                                     browser: WebDriver) -> None:  # fmt: skip
    with httpx.Client(base_url=running.url) as http:
        answer = http.get("/dashboard/sandboxes")
        assert answer.status_code == 303 and "/dashboard/login" in answer.headers["location"]
        bad = http.post("/dashboard/login", content="key=sp_nope_nope",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert bad.status_code == 401 and "unknown API key" in bad.text
    browser.get(f"{running.url}/dashboard/login")
    shoot(browser, "login")
