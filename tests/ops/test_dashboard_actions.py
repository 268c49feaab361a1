"""The dashboard acts: cancel, resume, fork, send an event, pause/resume a schedule, the
queue and schedule pages, the child list, search by id and the JSON download, each driven
through the page in headless Chromium, each checked in the node's database afterwards.
Waits are deadlines (WebDriverWait, wait_until), never fixed sleeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import edge
from tests.conftest import wait_until
from tests.ops.dashboard_actions_app import app
from tests.ops.test_dashboard import (
    TIMEOUT,
    By,
    WebDriver,
    browser,  # noqa: F401  (the module's browser fixture)
    console_problems,
    open_page,
    text,
    until,
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[edge.Node]:
    base = tmp_path_factory.mktemp("dash-actions")
    n = edge.Node(app, data_dir=base / "data", listen="127.0.0.1:0", workers=4)
    n.start()
    yield n
    n.stop(grace=2.0)


@pytest.fixture(scope="module")
def url(node: edge.Node) -> str:
    assert node.http is not None
    return node.http.url + "/"


def status(node: edge.Node, wid: str) -> str:
    return str(node.verbs.describe(wid)["status"])


def act(driver: WebDriver, button: str) -> str:
    """Click an action button, accept its confirmation, return the answer the page shows."""
    before = text(driver, "#action-result")
    driver.find_element(By.ID, button).click()
    alert = until(driver, lambda d: d.switch_to.alert, "the confirmation dialog")
    alert.accept()
    return str(until(driver, lambda d: (t := text(d, "#action-result")) != before and t,
                     f"the answer to {button}"))


def open_detail(driver: WebDriver, url: str, wid: str) -> None:
    open_page(driver, url, "#id=" + wid)
    until(driver, lambda d: text(d, "#detail-title") == wid and d.find_elements(By.ID, "actions"),
          f"the detail of {wid}")


def test_cancel_resume_and_send_event(browser: WebDriver, node: edge.Node,  # noqa: F811
                                      url: str) -> None:
    app.start(gate, "a", id="gate-a")
    wait_until(lambda: status(node, "gate-a") == "WAITING", timeout=TIMEOUT, what="gate-a parks")
    open_detail(browser, url, "gate-a")

    answer = act(browser, "act-cancel")
    assert "Cancel gate-a" in answer and '"cancel":"done"' in answer.replace(" ", "")
    wait_until(lambda: status(node, "gate-a") == "CANCELLED", timeout=TIMEOUT,
               what="the cancel to land in the database")

    until(browser, lambda d: d.find_element(By.ID, "act-resume").is_enabled(),
          "Resume to be offered for a cancelled workflow")
    act(browser, "act-resume")
    wait_until(lambda: status(node, "gate-a") == "WAITING", timeout=TIMEOUT,
               what="the resumed workflow to wait again")

    until(browser, lambda d: d.find_element(By.ID, "act-send").is_enabled(), "Send enabled")
    browser.find_element(By.ID, "act-event-name").send_keys("go")
    browser.find_element(By.ID, "act-event-value").send_keys('{"by": "dashboard"}')
    answer = act(browser, "act-send")
    assert '"delivered":true' in answer.replace(" ", "")
    wait_until(lambda: status(node, "gate-a") == "SUCCEEDED", timeout=TIMEOUT,
               what="the event to wake the workflow")
    assert node.verbs.describe("gate-a")["output"] == {"x": "a", "got": {"by": "dashboard"}}
    assert console_problems(browser) == []


def test_refused_action_shows_the_api_error(browser: WebDriver, node: edge.Node,  # noqa: F811
                                            url: str) -> None:
    app.start(gate, "b", id="gate-b")
    wait_until(lambda: status(node, "gate-b") == "WAITING", timeout=TIMEOUT, what="gate-b parks")
    open_detail(browser, url, "gate-b")
    browser.find_element(By.ID, "act-event-name").send_keys("go")
    browser.find_element(By.ID, "act-event-value").send_keys("{not json")
    browser.find_element(By.ID, "act-send").click()  # refused before any confirmation
    until(browser, lambda d: "not JSON" in text(d, "#action-result"), "the JSON error")
    assert status(node, "gate-b") == "WAITING"  # nothing was sent
    # Fork from a step past the end: the API refuses it, and the page says why.
    step = browser.find_element(By.ID, "act-fork-step")
    step.clear()
    step.send_keys("99")
    answer = act(browser, "act-fork")
    assert "refused" in answer
    assert browser.find_element(By.ID, "action-result").get_attribute("class").endswith("err")
    assert [w["id"] for w in node.verbs.list_workflows(limit=100)["workflows"]
            if w["id"].startswith("gate-b:fork")] == []
    # The browser logs the refused request itself, and nothing else (no CSP violation).
    problems = console_problems(browser)
    assert problems and all("/fork" in p and "400" in p for p in problems), problems


def test_fork_from_a_step(browser: WebDriver, node: edge.Node, url: str) -> None:  # noqa: F811
    app.start(job, "f", id="job-f").result(timeout=TIMEOUT)
    open_detail(browser, url, "job-f")
    step = browser.find_element(By.ID, "act-fork-step")
    step.clear()
    step.send_keys("2")
    answer = act(browser, "act-fork")
    new_id = json.loads(answer.split(": ", 1)[1])["id"]
    wait_until(lambda: status(node, new_id) == "SUCCEEDED", timeout=TIMEOUT,
               what="the fork to finish")
    forked = node.verbs.describe(new_id)
    assert forked["output"] == "finished-f"
    assert [s["name"] for s in forked["steps"]] == ["prepare", "finish"]


def test_children_listed_and_linked(browser: WebDriver, node: edge.Node,  # noqa: F811
                                    url: str) -> None:
    app.start(parent, 3, id="tree").result(timeout=TIMEOUT)
    open_detail(browser, url, "tree")
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#children li .badge")) == 3,
          "three children with their status")
    kids = browser.find_elements(By.CSS_SELECTOR, "#children li")
    assert [k.get_attribute("data-id") for k in kids] == ["tree:1", "tree:2", "tree:3"]
    assert all("SUCCEEDED" in k.text for k in kids)
    kids[1].find_element(By.TAG_NAME, "a").click()
    until(browser, lambda d: text(d, "#detail-title") == "tree:2", "the child's own detail")


def test_search_by_id_and_download(browser: WebDriver, node: edge.Node, url: str,  # noqa: F811
                                   tmp_path: Path) -> None:
    app.start(job, "s", id="job-search").result(timeout=TIMEOUT)
    open_page(browser, url)
    box = browser.find_element(By.ID, "f-id")
    box.send_keys("job-search")
    browser.find_element(By.CSS_SELECTOR, "#jump button").click()
    until(browser, lambda d: text(d, "#detail-title") == "job-search", "the searched workflow")
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(tmp_path)})
    until(browser, lambda d: d.find_element(By.ID, "act-download").is_enabled(), "download")
    browser.find_element(By.ID, "act-download").click()
    target = tmp_path / "job-search.json"

    def downloaded() -> object:
        # The file can appear before Chromium has written all of it: poll until it parses.
        try:
            return json.loads(target.read_text())
        except (OSError, ValueError):
            return None

    data = wait_until(downloaded, timeout=TIMEOUT, what="the downloaded JSON")
    assert data == node.verbs.describe("job-search")
    assert console_problems(browser) == []


def test_queue_and_schedule_pages(browser: WebDriver, node: edge.Node,  # noqa: F811
                                  url: str) -> None:
    open_page(browser, url, "#page=queues")
    jobs_row = '#queues-table tr[data-queue="jobs"]'
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, jobs_row), "the jobs queue")
    cells = browser.find_elements(By.CSS_SELECTOR, jobs_row + " td")
    assert [c.text for c in cells][:4] == ["jobs", "0", "0", "2"]
    assert "10 per" in cells[4].text
    assert browser.find_element(By.ID, "work").is_displayed() is False

    browser.find_element(By.ID, "nav-schedules").click()
    row = '#schedules-table tr[data-schedule="yearly"]'
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the yearly schedule")
    assert text(browser, row + " .sched-state") == "active"
    browser.find_element(By.CSS_SELECTOR, row + " button").click()
    until(browser, lambda d: d.switch_to.alert, "the confirmation").accept()
    wait_until(lambda: [s for s in node.verbs.schedules()["schedules"] if s["name"] == "yearly"][0][
        "paused"], timeout=TIMEOUT, what="the schedule paused in the database")
    until(browser, lambda d: text(d, row + " .sched-state") == "paused", "the page shows paused")
    browser.find_element(By.CSS_SELECTOR, row + " button").click()
    until(browser, lambda d: d.switch_to.alert, "the confirmation").accept()
    wait_until(lambda: not [s for s in node.verbs.schedules()["schedules"]
                            if s["name"] == "yearly"][0]["paused"],
               timeout=TIMEOUT, what="the schedule resumed in the database")
    assert console_problems(browser) == []


gate = app.workflows["gate"].fn
job = app.workflows["job"].fn
parent = app.workflows["parent"].fn


def test_search_by_tag_prefix_and_time(browser: WebDriver, node: edge.Node,  # noqa: F811
                                       url: str) -> None:
    app.start(job, "t1", id="srch-paris-1", tags={"site": "paris"}).result(timeout=TIMEOUT)
    app.start(job, "t2", id="srch-lyon-1", tags={"site": "lyon"}).result(timeout=TIMEOUT)
    app.start(job, "t3", id="srch-paris-2", tags={"site": "paris", "vip": "yes"}).result(
        timeout=TIMEOUT)
    open_page(browser, url)
    browser.find_element(By.ID, "f-tag").send_keys("site=paris")
    browser.find_element(By.ID, "search-go").click()
    until(browser, lambda d: row_ids(d) == ["srch-paris-2", "srch-paris-1"], "the tag search")
    assert "tag=site%3Dparis" in browser.current_url  # the search is in the fragment

    browser.find_element(By.ID, "f-tag").send_keys(" vip=yes")
    browser.find_element(By.ID, "search-go").click()
    until(browser, lambda d: row_ids(d) == ["srch-paris-2"], "two tags must both match")

    browser.find_element(By.ID, "search-clear").click()
    browser.find_element(By.ID, "f-prefix").send_keys("srch-lyon")
    browser.find_element(By.ID, "search-go").click()
    until(browser, lambda d: row_ids(d) == ["srch-lyon-1"], "the prefix search")

    # A time range that ends before anything was created shows nothing.
    browser.find_element(By.ID, "search-clear").click()
    browser.execute_script(
        "document.getElementById('f-until').value = '2001-01-01T00:00:00';")
    browser.find_element(By.ID, "search-go").click()
    until(browser, lambda d: d.find_element(By.ID, "wf-empty").is_displayed(), "an empty range")
    assert text(browser, "#wf-empty") == "no workflows match these filters"

    # A tag chip in the detail lists the workflows with that tag.
    open_detail(browser, url, "srch-lyon-1")
    browser.find_element(By.CSS_SELECTOR, "#detail-tags .tagchip").click()
    until(browser, lambda d: row_ids(d) == ["srch-lyon-1"], "the tag chip's search")
    assert console_problems(browser) == []


def row_ids(driver: WebDriver) -> list[str]:
    return [str(r.get_attribute("data-id"))
            for r in driver.find_elements(By.CSS_SELECTOR, "#wf-rows tr")]


ro_app = edge.App("actions-ro")


@ro_app.workflow(name="gate")
def ro_gate(x: str) -> object:
    return edge.wait_event("go")


def test_read_only_token_sees_no_actions(browser: WebDriver,  # noqa: F811
                                         tmp_path: Path) -> None:
    n = edge.Node(ro_app, data_dir=tmp_path / "data", listen="127.0.0.1:0",
                  api_token="write-secret", api_read_token="read-secret")
    n.start()
    try:
        ro_app.start(ro_gate, "ro", id="gate-ro")
        wait_until(lambda: status(n, "gate-ro") == "WAITING", timeout=TIMEOUT, what="parked")
        base = n.http.url + "/"  # type: ignore[union-attr]
        open_page(browser, base, "#token=read-secret&id=gate-ro")
        until(browser, lambda d: d.find_elements(By.ID, "actions"), "the detail")
        until(browser, lambda d: "read-only" in (d.find_element(By.TAG_NAME, "body")
                                                 .get_attribute("class") or ""), "read-only mode")
        assert not browser.find_element(By.ID, "act-cancel").is_displayed()
        open_page(browser, base, "#token=write-secret&id=gate-ro")
        until(browser, lambda d: d.find_elements(By.ID, "act-cancel")
              and d.find_element(By.ID, "act-cancel").is_displayed(), "the actions for writers")
        assert status(n, "gate-ro") == "WAITING"
        browser.execute_script("sessionStorage.clear()")
    finally:
        n.stop(grace=2.0)
