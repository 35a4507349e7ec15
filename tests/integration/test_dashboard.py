"""The dashboard in real headless Chromium (Debian's chromium and chromium-driver).

The gateway config's ``[dashboard] listen = "127.0.0.1:0"`` serves a SQLite store filled
by ``status_store.fill_store``: two counties of one city, four nodes, one failed batch.
The page is read through its DOM (stable ids and data attributes), and the browser's
console must stay free of errors (a CSP violation or a missing file would show there).
A degraded report's banner and the page shown while the store is away are loaded too.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from adapters.stores import sql_status
from adapters.stores.sql import SqlStore
from gateway.config import load_config
from gateway.dashboard.command import open_dashboard
from gateway.dashboard.server import DashboardServer
from schemas.catalog import load_catalog
from tests.unit.adapters.status_store import FAILED_BATCH, FAILED_NODE, PLANS, fill_store

CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT_S = 20  # an upper bound for the page to draw, never an assertion
CONFIG = """\
[level]
division = "430100"
[broker]
url = "amqp://gateway@127.0.0.1:5672/exgate"
[store]
url = "sqlite:///store.db"
[registry]
path = "registry"
[dashboard]
listen = "127.0.0.1:0"
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    folder = tmp_path_factory.mktemp("dashboard")
    (folder / "gateway.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(folder / "gateway.toml")
    store = SqlStore(config.store_url)
    store.migrate()
    with frozen_status_clock(fill_store(store)):
        server = open_dashboard(config, store).start()
        try:
            yield server
        finally:
            server.stop()
            store.close()


@contextmanager
def frozen_status_clock(now: datetime) -> Iterator[None]:
    """The status code's clock stopped at ``now``, the moment the filled data is relative to.

    The lights depend on the ages of the heartbeats (furong-01's last beat is 10 s old and
    turns late after ``heartbeat_late_s``); a slow browser must not age the data under the
    module's tests. Patched where ``read_status_rows`` looks the name up.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql_status, "now_beijing", lambda: now)
        yield


@contextmanager
def serve(folder: Path, config_text: str, *, fill: bool) -> Iterator[DashboardServer]:
    (folder / "gateway.toml").write_text(config_text, encoding="utf-8")
    config = load_config(folder / "gateway.toml")
    store = SqlStore(config.store_url)
    try:
        clock: AbstractContextManager[None] = nullcontext()
        if fill:
            store.migrate()
            clock = frozen_status_clock(fill_store(store))
        with clock, open_dashboard(config, store).start() as server:
            yield server
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    saved = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager never goes to the network
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1440,1600",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if saved is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved


def load(browser: WebDriver, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_element(By.ID, "throughput-chart").get_attribute("data-drawn") == "1")


def attr(browser: WebDriver, selector: str, name: str) -> str | None:
    return browser.find_element(By.CSS_SELECTOR, selector).get_attribute(name)


def test_the_page_shows_the_tree_lights_coverage_and_failures(
        dashboard: DashboardServer, browser: WebDriver) -> None:
    load(browser, dashboard.url + "/")
    assert attr(browser, "html", "lang") == "zh-CN"
    assert "数据交换同步状态" in browser.title
    assert attr(browser, "#overall", "data-light") == "red"
    groups = {(g.get_attribute("data-kind"), g.get_attribute("data-division")):
              g.get_attribute("data-light")
              for g in browser.find_elements(By.CSS_SELECTOR, "#tree li.group")}
    assert groups == {("province", "430000"): "red", ("city", "430100"): "red",
                      ("county", "430102"): "yellow", ("county", "430103"): "red"}
    for plan in PLANS:
        in_tree = f'li.group[data-division="{plan.division}"] li.tree-node' \
                  f'[data-node="{plan.node_id}"]'
        assert attr(browser, in_tree, "data-light") == plan.expected
        assert attr(browser, f"tr#node-{plan.node_id}", "data-light") == plan.expected
    assert attr(browser, f"tr#node-{FAILED_NODE}", "data-failed") == "1"
    failed = browser.find_elements(By.CSS_SELECTOR, "#failed-batches tbody tr")
    assert [(r.get_attribute("data-batch"), r.get_attribute("data-reason")) for r in failed] \
        == [(FAILED_BATCH, "bad-signature")]
    assert "签名校验失败" in failed[0].text


def test_the_coverage_matrix_has_every_node_and_the_14_elements(
        dashboard: DashboardServer, browser: WebDriver) -> None:
    load(browser, dashboard.url + "/")
    codes = list(load_catalog().elements)
    heads = browser.find_elements(By.CSS_SELECTOR, "#coverage thead th.element")
    assert [h.get_attribute("data-element") for h in heads] == codes
    for plan in PLANS:
        cells = browser.find_elements(By.CSS_SELECTOR,
                                      f'#coverage td.cell[data-node="{plan.node_id}"]')
        assert [c.get_attribute("data-element") for c in cells] == codes
        covered = {c.get_attribute("data-element") for c in cells
                   if c.get_attribute("data-covered") == "1"}
        assert covered == set(plan.elements)
        assert all(c.get_attribute("data-last") for c in cells
                   if c.get_attribute("data-covered") == "1")
        count = f'#coverage tr[data-node="{plan.node_id}"] td[data-covered-count]'
        assert attr(browser, count, "data-covered-count") == str(len(plan.elements))
        missing = [code for code in codes if code not in plan.elements]
        assert attr(browser, count, "data-missing") == " ".join(missing)
        if missing:  # every missing element named where the pointer rests
            title = attr(browser, count, "title") or ""
            assert title.startswith(f"缺：{missing[0]} "
                                    f"{load_catalog().elements[missing[0]].label}")
            assert all(code in title for code in missing)


def test_the_chart_is_drawn_and_the_console_is_clean(
        dashboard: DashboardServer, browser: WebDriver) -> None:
    load(browser, dashboard.url + "/")
    painted = browser.execute_script("""
        const canvas = document.querySelector('#throughput-chart canvas');
        if (!canvas || !canvas.width || !canvas.height) { return 0; }
        const pixels = canvas.getContext('2d')
            .getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) { painted++; } }
        return painted;
    """)
    assert painted > 1000
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))


def test_english_on_request(dashboard: DashboardServer, browser: WebDriver) -> None:
    load(browser, dashboard.url + "/?lang=en")
    assert attr(browser, "html", "lang") == "en"
    assert "Data exchange sync status" in browser.title
    assert "heartbeat late" in browser.find_element(By.ID, "tree").text
    heads = browser.find_elements(By.CSS_SELECTOR, "#coverage thead th.element .label")
    assert [h.text for h in heads][:3] == ["Organization", "Approval item", "Application"]
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_degraded_report_shows_a_red_banner_naming_the_file(
        tmp_path: Path, browser: WebDriver) -> None:
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "furong-01.json").write_text("{ not json", encoding="utf-8")
    with serve(tmp_path, CONFIG, fill=True) as server:
        load(browser, server.url + "/")
        banner = browser.find_element(By.ID, "degraded")
        assert banner.is_displayed() and "状态不完整" in banner.text
        assert "furong-01.json" in banner.text
        assert banner.value_of_css_property("background-color") == "rgba(254, 226, 226, 1)"
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_wallboard_reloads_itself_while_the_store_is_away(
        tmp_path: Path, browser: WebDriver) -> None:
    away = CONFIG.replace("sqlite:///store.db", "postgresql+psycopg://exgate:s3cret@127.0.0.1:1/x")
    with serve(tmp_path, away + "refresh_seconds = 1\n", fill=False) as server:
        browser.get(server.url + "/?lang=en")
        trouble = browser.find_element(By.ID, "trouble")
        assert trouble.get_attribute("data-reason") == "store-unavailable"
        assert "store cannot be read" in trouble.text and "127.0.0.1" not in trouble.text
        # Reloaded by the browser itself: the marker a script leaves is gone after a while.
        browser.execute_script("window.exgateMarker = 1;")
        WebDriverWait(browser, WAIT_S).until(
            lambda d: d.execute_script("return window.exgateMarker === undefined;"))


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_metrics_have_the_node_light_gauge(dashboard: DashboardServer) -> None:
    status, headers, body = fetch(dashboard.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    lights = {s.labels["node_id"]: s.value for s in families["exgate_node_light"].samples}
    assert lights == {plan.node_id: {"green": 0, "yellow": 1, "red": 2}[plan.expected]
                      for plan in PLANS}
    assert [s.value for s in families["exgate_level_light"].samples] == [2]
    failed = {s.labels["node_id"]: s.value
              for s in families["exgate_node_failed_batches"].samples}
    assert failed[FAILED_NODE] == 1
    level = {s.labels["sender"]: s.value
             for s in families["exgate_level_failed_batches"].samples}
    assert level == {"node": 1, "unknown": 0}
    assert [s.value for s in families["exgate_registry_unreadable_files"].samples] == [0]
    assert families["exgate_node_records_stored"].type == "counter"


def test_the_server_is_read_only(dashboard: DashboardServer) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = fetch(dashboard.url + "/", method)
        assert (status, headers.get("Allow")) == (405, "GET, HEAD")
    status, headers, body = fetch(dashboard.url + "/", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert fetch(dashboard.url + "/static/uPlot.iife.min.js")[0] == 200
    assert fetch(dashboard.url + "/static/../server.py")[0] == 404
    status, _, body = fetch(dashboard.url + "/status.json")
    data = json.loads(body)
    assert status == 200 and data["level"] == "430100" and data["light"] == "red"
    assert {n["node_id"]: n["light"] for n in data["nodes"]} == \
        {p.node_id: p.expected for p in PLANS}
