"""The dashboard at ``/`` in a real headless Chromium (Debian's chromium + chromium-driver).

One node (a file:// replica, so the replication panel has real data) and one
browser serve the whole module. Everything waits on deadlines (WebDriverWait),
never on fixed sleeps.

Regenerate the committed screenshot with
``EDGE_DASHBOARD_SCREENSHOT=docs/dashboard.png .venv/bin/pytest tests/ops/test_dashboard.py``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.api.dashboard import CSP
from edge.api.server import ApiServer
from tests.conftest import wait_until
from tests.ops.dashboard_app import app as shop

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

EVIL_ID = "<img src=x onerror=\"window.__pwned=1\">&amp;'\u00e9"
TIMEOUT = 10.0


def _browser_paths() -> tuple[str, str] | None:
    binary = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                               shutil.which("chromium-browser")) if p and os.path.exists(p)), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    return (binary, driver) if binary and driver else None


def _get(port: int, path: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[edge.Node]:
    base = tmp_path_factory.mktemp("dash")
    n = edge.Node(shop, data_dir=base / "data", replica=(base / "replica").as_uri(),
                  listen="127.0.0.1:0", workers=4)
    n.start()
    # Three orders that complete (their approval is sent before they wait for it),
    # one that waits for its approval, a failed refund, a sleeping report.
    for i in (1, 2, 3):
        shop.start("fulfil", f"order-{i}", 1200 * i, id=f"order-{i}")
        n.verbs.send_event(f"order-{i}", "approved", f"clerk-{i}")
    shop.start("refund", "order-2", id="refund-order-2")
    shop.start("nightly_report", "2025-06-01", id="report-2025-06-01")
    shop.start("fulfil", "order-4", 990, id="order-4")
    shop.start("echo", "data <b>not</b> markup", id=EVIL_ID)

    def settled() -> bool:
        want = {"order-1": "SUCCEEDED", "order-2": "SUCCEEDED", "order-3": "SUCCEEDED",
                "order-4": "WAITING", "refund-order-2": "FAILED",
                "report-2025-06-01": "SLEEPING", EVIL_ID: "SUCCEEDED"}
        return all(n.verbs.describe(k)["status"] == v for k, v in want.items())

    wait_until(settled, timeout=TIMEOUT, what="the demo workflows to settle")
    yield n
    n.stop(grace=2.0)


@pytest.fixture(scope="module")
def url(node: edge.Node) -> str:
    assert node.http is not None
    return node.http.url + "/"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    paths = _browser_paths()
    if paths is None:
        pytest.skip("chromium and chromedriver are not installed (scripts/system-deps)")
    binary, driver_path = paths
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-quic", "--no-first-run",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path)
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(TIMEOUT)
    yield driver
    driver.quit()


def until(driver: WebDriver, pred: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait for ``pred`` (re-tried when the page re-renders the element under it)."""
    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        pred, message=f"timed out waiting for {what}")


def rows(driver: WebDriver) -> list[str]:
    return [str(r.get_attribute("data-id"))
            for r in driver.find_elements(By.CSS_SELECTOR, "#wf-rows tr")]


def text(driver: WebDriver, css: str) -> str:
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else ""


def row(driver: WebDriver, wid: str) -> WebElement:
    for r in driver.find_elements(By.CSS_SELECTOR, "#wf-rows tr"):
        if r.get_attribute("data-id") == wid:
            return r
    raise AssertionError(f"no row for {wid!r}")


def open_page(driver: WebDriver, url: str, fragment: str = "") -> None:
    driver.get("about:blank")  # a fresh document (a fragment change alone does not reload)
    driver.get(url + fragment)
    until(driver, lambda d: d.find_element(By.ID, "refresh").get_attribute("data-ok") not in
          (None, "", "0"), "the first successful refresh")


def kick(driver: WebDriver) -> None:
    """Refresh now instead of at the next 2 s tick (Pause, then Resume, refreshes)."""
    driver.find_element(By.ID, "pause").click()
    driver.find_element(By.ID, "pause").click()


def next_refresh(driver: WebDriver) -> None:
    """Start a refresh and wait for it (or a later one) to succeed in full."""
    last = driver.find_element(By.ID, "refresh").get_attribute("data-ok") or "0"
    floor = int(driver.execute_script("return Date.now()"))
    kick(driver)
    until(driver, lambda d: int(d.find_element(By.ID, "refresh").get_attribute("data-ok")
                                or "0") > max(floor, int(last)), "a successful refresh")


def console_problems(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")]


def open_workflow(driver: WebDriver, wid: str) -> None:
    until(driver, lambda d: wid in rows(d), f"{wid} in the list")
    row(driver, wid).click()
    until(driver, lambda d: text(d, "#detail-title") == wid and d.find_elements(
        By.CSS_SELECTOR, "#steps, #detail .empty"), f"the timeline of {wid}")


# ---- the page itself -----------------------------------------------------------------------


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_is_static_and_locked_down_by_csp(node: edge.Node, url: str) -> None:
    port = node.http.port  # type: ignore[union-attr]
    status, headers, body = _get(port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert csp == CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp
    page = body.decode()
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert directives["script-src"] == _hash(scripts[0])
    assert directives["style-src"] == _hash(styles[0])
    # No external assets, no inline handlers or style attributes, no data in the page.
    markup = re.sub(r"<(script|style)>.*?</\1>", "", page, flags=re.S)
    assert not re.search(r"\son[a-z]+\s*=", markup) and " style=" not in markup
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "order-1" not in page
    assert _get(port, "/")[2] == body  # the same bytes every time
    assert _get(port, "/", "HEAD")[0] == 200
    assert headers["x-frame-options"] == "DENY"


# ---- in the browser ------------------------------------------------------------------------


def test_list_counts_and_timeline(browser: WebDriver, node: edge.Node, url: str) -> None:
    open_page(browser, url)
    until(browser, lambda d: {"order-1", "order-4", "refund-order-2"} <= set(rows(d)),
          "the started workflows in the list")
    assert rows(browser)[0] == EVIL_ID  # newest first

    def count(status: str) -> str:
        return text(browser, f'.tile[data-status="{status}"] .n')

    until(browser, lambda d: count("SUCCEEDED") == "4", "the SUCCEEDED count")
    assert (count("WAITING"), count("FAILED"), count("SLEEPING")) == ("1", "1", "1")
    assert count("") == "7"
    assert "leader" in text(browser, "#leader") and text(browser, "#node-state") == "ready"
    assert "sidecar up" in text(browser, "#repl-chips")
    assert "holds the lease" in text(browser, "#repl-chips")
    # The node's first restore drill runs a few seconds after boot (replica_drills.py).
    until(browser, lambda d: "verified TXID" in text(d, "#last-drill"), "the last drill")
    assert "replica verified" in text(browser, "#repl-chips")

    open_workflow(browser, "order-1")
    assert row(browser, "order-1").get_attribute("class") == "sel"
    assert "id=order-1" in browser.execute_script("return location.hash")
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")
    cells = [[c.text for c in s.find_elements(By.TAG_NAME, "td")] for s in steps]
    assert [(c[1], c[2]) for c in cells] == [
        ("reserve", "SUCCEEDED"), ("charge", "SUCCEEDED"),
        ("approved wait_event", "SUCCEEDED"), ("ship", "SUCCEEDED")]
    assert [c[3] for c in cells] == ["1", "2", "1", "1"]  # the charge was retried once
    assert all(re.fullmatch(r"(< )?[0-9.]+ (ms|s)", c[4]) for c in cells)  # durations
    assert '"parcel": "parcel-order-1"' in text(browser, "#detail-output")
    assert '"order-1"' in text(browser, "#detail-input")
    assert not text(browser, "#detail-state")  # finished: no state callout


def test_waiting_workflow_shows_what_it_waits_for(browser: WebDriver, url: str) -> None:
    open_page(browser, url, "#id=order-4")  # a fragment opens a workflow directly
    until(browser, lambda d: text(d, "#detail-title") == "order-4", "the order-4 timeline")
    state = until(browser, lambda d: text(d, "#detail-state"), "the state callout")
    assert state.startswith("Waiting for event approved")
    assert "times out at" in state and "in 59 min" in state
    last = browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")[-1]
    assert [c.text for c in last.find_elements(By.TAG_NAME, "td")][1:3] == [
        "approved wait_event", "RUNNING"]
    assert "waiting for event \u201capproved\u201d" in row(browser, "order-4").text

    open_workflow(browser, "report-2025-06-01")
    state = text(browser, "#detail-state")
    assert state.startswith("Sleeping until") and "(in 14 min" in state


def test_failed_workflow_shows_errors_and_attempts(browser: WebDriver, url: str) -> None:
    open_page(browser, url)
    open_workflow(browser, "refund-order-2")
    assert text(browser, "#detail-error") == (
        "Error StepFailed: step refund_payment failed: PaymentDeclined: card for order-2 "
        "was closed")
    step = browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")[-1]
    cells = [c.text for c in step.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["refund_payment", "FAILED", "3"]
    assert text(browser, "#steps tr.errrow") == "PaymentDeclined: card for order-2 was closed"
    # Every failed attempt is listed, with when it failed; the retried ones say when the
    # retry was due, the final one does not.
    attempts = browser.find_elements(By.CSS_SELECTOR, "#steps tr.attempt")
    assert [a.get_attribute("data-attempt") for a in attempts] == ["1", "2", "3"]
    assert all("PaymentDeclined: card for order-2 was closed" in a.text for a in attempts)
    assert ["retry at" in a.text for a in attempts] == [True, True, False]
    browser.find_element(By.ID, "detail-close").click()
    until(browser, lambda d: not d.find_element(By.ID, "detail").is_displayed(), "closed")
    assert "id=" not in browser.execute_script("return location.hash")


def test_filters_and_paging(browser: WebDriver, url: str) -> None:
    open_page(browser, url)
    until(browser, lambda d: len(rows(d)) == 7, "all seven rows")
    Select(browser.find_element(By.ID, "f-status")).select_by_value("FAILED")
    until(browser, lambda d: rows(d) == ["refund-order-2"], "only the failed one")
    assert "status=FAILED" in browser.execute_script("return location.hash")
    browser.find_element(By.CSS_SELECTOR, '.tile[data-status="SUCCEEDED"]').click()
    until(browser, lambda d: len(rows(d)) == 4 and "order-4" not in rows(d), "SUCCEEDED only")
    until(browser, lambda d: len(Select(d.find_element(By.ID, "f-workflow")).options) == 5,
          "the workflow names from /v1/app")
    Select(browser.find_element(By.ID, "f-workflow")).select_by_value("fulfil")
    until(browser, lambda d: rows(d) == ["order-3", "order-2", "order-1"], "fulfil, SUCCEEDED")

    # Paging with the API's cursor, two per page.
    open_page(browser, url, "#workflow=fulfil&limit=2")
    until(browser, lambda d: rows(d) == ["order-4", "order-3"], "page 1")
    older = browser.find_element(By.ID, "older")
    assert not browser.find_element(By.ID, "newer").is_enabled()
    older.click()
    until(browser, lambda d: rows(d) == ["order-2", "order-1"], "page 2")
    until(browser, lambda d: not d.find_element(By.ID, "older").is_enabled(), "the last page")
    browser.find_element(By.ID, "newer").click()
    until(browser, lambda d: rows(d) == ["order-4", "order-3"], "back on page 1")
    assert console_problems(browser) == []


def test_user_data_is_text_never_markup(browser: WebDriver, url: str) -> None:
    open_page(browser, url)
    open_workflow(browser, EVIL_ID)
    assert row(browser, EVIL_ID).find_element(By.CSS_SELECTOR, "td.id").text == EVIL_ID
    assert text(browser, "#detail-title") == EVIL_ID
    assert "data <b>not</b> markup" in text(browser, "#detail-output")
    assert browser.find_elements(By.CSS_SELECTOR, "#wf-rows img, #detail img, #detail b b") == []
    assert browser.execute_script("return window.__pwned === undefined")
    assert console_problems(browser) == []  # no CSP violation, no script error


def test_refreshes_itself(browser: WebDriver, node: edge.Node, url: str) -> None:
    shop.start("fulfil", "order-5", 100, id="order-5")
    open_page(browser, url, "#id=order-5")
    until(browser, lambda d: "order-5" in rows(d), "order-5 in the list")
    until(browser, lambda d: "WAITING" in text(d, "#detail .sub"), "order-5 waiting")
    node.verbs.send_event("order-5", "approved", "boss")  # the page is not reloaded
    until(browser, lambda d: "SUCCEEDED" in row(d, "order-5").text, "the list to refresh")
    until(browser, lambda d: "SUCCEEDED" in text(d, "#detail .sub"), "the timeline to refresh")
    assert '"approved_by": "boss"' in text(browser, "#detail-output")
    # The steps read while it waited, merged with those read after: each once, in order.
    seqs = [str(s["seq"]) for s in node.verbs.describe("order-5")["steps"]]
    until(browser, lambda d: [r.get_attribute("data-seq") for r in d.find_elements(
        By.CSS_SELECTOR, "#steps tr.step")] == seqs, "every step of order-5, once")
    shot = os.environ.get("EDGE_DASHBOARD_SCREENSHOT")
    if shot:
        # The committed screenshot: the waiting order's timeline next to the list.
        open_page(browser, url, "#id=order-4")
        until(browser, lambda d: text(d, "#detail-state"), "the waiting timeline")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1440, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
        try:
            until(browser, lambda d: d.execute_script(
                "return document.documentElement.scrollWidth <= innerWidth"), "no h-scroll")
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(shot)
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_polls_read_only_the_steps_not_yet_settled(browser: WebDriver, node: edge.Node,
                                                   url: str) -> None:
    n = len(node.verbs.describe("order-1")["steps"])
    open_page(browser, url, "#id=order-1")
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#steps tr.step")) == n,
          "the timeline of order-1")
    browser.execute_script("performance.setResourceTimingBufferSize(10000);"
                           "performance.clearResourceTimings()")
    next_refresh(browser)
    next_refresh(browser)
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((u) => u.includes('/v1/workflows/order-1?'))")
    assert len(urls) >= 2, urls
    # Every step of the finished workflow was read once: a poll asks for those after them.
    assert all(f"steps_after={n}" in u for u in urls), urls
    assert len(browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")) == n


def test_api_token_from_fragment_and_form(browser: WebDriver, tmp_path: Path) -> None:
    app = edge.App("tokened")

    @app.workflow(name="noop")
    def noop() -> str:
        return "ok"

    with edge.Node(app, data_dir=tmp_path / "d", listen="127.0.0.1:0",
                   api_token="s3cret") as n:
        assert n.http is not None
        app.start("noop", id="tok-1").result(timeout=TIMEOUT)
        base = n.http.url + "/"
        # The page request passes the server's token check only with the header (a proxy
        # adds it in real life); the page's own API calls must carry the token themselves.
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": "Bearer s3cret"}})
        try:
            browser.get("about:blank")
            browser.get(base + "#token=s3cret")
            assert browser.execute_script("return location.hash") == ""  # not left in view
            assert browser.execute_script(
                "return sessionStorage.getItem('edge.apiToken')") == "s3cret"
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        next_refresh(browser)  # a whole refresh with no header but the page's own
        assert rows(browser) == ["tok-1"]
        # A wrong token: the page asks for one, and uses the one typed in.
        browser.execute_script("sessionStorage.setItem('edge.apiToken', 'wrong')")
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": "Bearer s3cret"}})
        try:
            browser.get("about:blank")
            browser.get(base)
        finally:
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        kick(browser)
        form = until(browser, lambda d: d.find_element(By.ID, "token-form").is_displayed()
                     and d.find_element(By.ID, "token-form"), "the token form")
        form.find_element(By.ID, "token-input").send_keys("s3cret")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        next_refresh(browser)
        assert rows(browser) == ["tok-1"]
        assert not browser.find_element(By.ID, "token-form").is_displayed()
        browser.execute_script("sessionStorage.clear()")
        browser.execute_cdp_cmd("Network.disable", {})


def test_node_not_ready(browser: WebDriver, tmp_path: Path) -> None:
    node = edge.Node(shop, data_dir=tmp_path / "d")  # constructed, never started
    server = ApiServer(node.verbs, "127.0.0.1", 0).start()
    try:
        browser.get("about:blank")
        browser.get(server.url + "/")
        until(browser, lambda d: "Node not ready" in text(d, "#banner"), "the not-ready banner")
        assert text(browser, "#node-state") == "created"
        assert "No replica" in text(browser, "#no-replica")
    finally:
        server.stop()
