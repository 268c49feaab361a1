"""`edge fleet serve`: /v1/fleet, per-site gauges on /metrics (bounded labels), alert
rules that read only what it exports (promtool), a read-only HTTP surface, and the page
in a real headless Chromium. The bucket is unchanged by all of it."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from edge.fleet import open_fleet
from edge.fleet.serve import CSP, FleetServer
from tests.dr.proxy import FlakyProxy
from tests.fleet.conftest import Sites
from tests.ops.conftest import DEPLOY, promql_equality_matchers, promql_metric_names, system_tool

RULES = DEPLOY / "prometheus" / "fleet-alerts.yml"
EVIL_HOLDER = "<img src=x onerror=\"window.__pwned=1\">"
TIMEOUT = 15.0


def get(url: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=b"{}" if method != "GET" else None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    code, _, body = get(url, "/metrics")
    assert code == 200
    return [(s.name, dict(s.labels), s.value)
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def value(url: str, name: str, **labels: str) -> float | None:
    for n, lab, v in samples(url):
        if n == name and all(lab.get(k) == x for k, x in labels.items()):
            return v
    return None


def build(sites: Sites) -> None:
    sites.build("alpha", good_n=2, bad_n=1, waiting=["wait-a1"])
    sites.build("bravo", good_n=1, release=True)
    sites.put("sites/delta/lease.json", b"[]")
    body = {"owner": EVIL_HOLDER, "epoch": 2, "expires_at": 0, "released": False,
            "nonce": "n", "ttl": 10}
    sites.put("sites/echo/lease.json", json.dumps(body).encode())


@pytest.fixture
def served(sites: Sites, tmp_path: Path) -> Iterator[tuple[Sites, FleetServer, FlakyProxy]]:
    build(sites)
    port = int(sites.endpoint.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    url = f"s3://{sites.bucket}/sites?endpoint=http://127.0.0.1:{proxy.port}"
    fleet = open_fleet(url, tmp_path / "cache", persist_seen=False)
    server = FleetServer(fleet, "127.0.0.1", 0, refresh=3600).start()
    yield sites, server, proxy
    server.stop()
    proxy.close()


def test_serve_exports_per_site_gauges_and_writes_nothing(served: Any) -> None:
    sites, server, proxy = served
    before = sites.snapshot()
    url = server.url
    code, headers, body = get(url, "/v1/fleet")
    assert code == 200
    got = {s["site"]: s for s in json.loads(body)["sites"]}
    assert sorted(got) == ["alpha", "bravo", "delta", "echo"]

    assert value(url, "edge_fleet_site_workflows", site="alpha", status="FAILED") == 1
    assert value(url, "edge_fleet_site_workflows", site="alpha", status="SUCCEEDED") == 2
    assert value(url, "edge_fleet_site_workflows", site="alpha", status="WAITING") == 1
    assert value(url, "edge_fleet_site_lease_epoch", site="echo") == 2
    assert value(url, "edge_fleet_site_failed_24h", site="alpha") == 1
    assert value(url, "edge_fleet_site_up", site="delta") == 0
    assert value(url, "edge_fleet_site_up", site="alpha") == 1
    age = value(url, "edge_fleet_site_replica_age_seconds", site="alpha")
    assert age is not None and 0 <= age < 300
    assert value(url, "edge_fleet_sites") == 4
    # Labels are bounded: only site and status, never a workflow id.
    for name, labels, _ in samples(url):
        if name.startswith("edge_fleet_site_"):
            assert set(labels) <= {"site", "status"}, (name, labels)

    for method in ("POST", "PUT", "DELETE"):
        code, headers, _ = get(url, "/v1/fleet", method)
        assert code == 405 and headers["allow"] == "GET"

    # A failed read keeps the last one and says so.
    proxy.set_mode("refuse")
    server.read_once()
    out = json.loads(get(url, "/v1/fleet")[2])
    assert out["last_error"]["code"] == "unreachable" and len(out["sites"]) == 4
    assert value(url, "edge_fleet_read_errors_total") == 1
    proxy.set_mode("pass")
    server.read_once()
    assert json.loads(get(url, "/v1/fleet")[2])["last_error"] is None
    assert sites.snapshot() == before


# ---- the alert rules ----------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_fleet_alerts_read_only_what_the_server_exports(served: Any) -> None:
    _, server, _ = served
    exported = samples(server.url)
    known = {n for n, _, _ in exported}
    by_name = {r["alert"]: r for r in rules()}
    assert {"EdgeFleetSiteReplicaStale", "EdgeFleetSiteFailures"} <= set(by_name)
    for rule in by_name.values():
        names = promql_metric_names(rule["expr"])
        assert names and names <= known, (rule["alert"], names - known)
        for metric, label, want in promql_equality_matchers(rule["expr"]):
            vals = {lab.get(label) for n, lab, _ in exported if n == metric}
            assert want in vals, (rule["alert"], metric, label, want)
        assert rule["labels"]["severity"] in ("warning", "critical")


RULE_TESTS = [
    {"interval": "1m", "input_series": [
        {"series": 'edge_fleet_site_replica_age_seconds{site="busy"}', "values": "2000+60x30"},
        {"series": 'edge_fleet_site_workflows{site="busy",status="RUNNING"}', "values": "3x30"},
        {"series": 'edge_fleet_site_workflows{site="busy",status="PENDING"}', "values": "0x30"},
        {"series": 'edge_fleet_site_replica_age_seconds{site="idle"}', "values": "9000+60x30"},
        {"series": 'edge_fleet_site_workflows{site="idle",status="RUNNING"}', "values": "0x30"},
        {"series": 'edge_fleet_site_workflows{site="idle",status="PENDING"}', "values": "0x30"},
        {"series": 'edge_fleet_site_failed_24h{site="busy"}', "values": "0x30"},
        {"series": 'edge_fleet_site_failed_24h{site="idle"}', "values": "0 0 2x28"}],
     "alert_rule_test": [
        {"eval_time": "15m", "alertname": "EdgeFleetSiteReplicaStale", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "site": "busy"}}]},
        {"eval_time": "5m", "alertname": "EdgeFleetSiteFailures", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "site": "idle"}}]},
        {"eval_time": "1m", "alertname": "EdgeFleetSiteFailures", "exp_alerts": []}]},
]


def test_promtool_checks_and_unit_tests_the_fleet_rules(tmp_path: Path) -> None:
    promtool = system_tool("promtool", "prometheus")
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and f"SUCCESS: {len(rules())} rules" in proc.stdout, proc.stdout
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(doc))
    (tmp_path / "t.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": RULE_TESTS}))
    proc = subprocess.run([promtool, "test", "rules", "t.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the page in Chromium -----------------------------------------------------------------


def test_the_page_in_chromium(served: Any, tmp_path: Path) -> None:
    from tests.ops.test_dashboard import _browser_paths

    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sites, server, proxy = served
    paths = _browser_paths()
    if paths is None:
        pytest.skip("chromium and chromedriver are not installed (scripts/system-deps)")
    code, headers, _ = get(server.url, "/")
    assert code == 200 and headers["content-security-policy"] == CSP
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1440,900",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=paths[1]))
    try:
        def until(pred: Any, what: str) -> Any:
            return WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(
                pred, message=f"timed out waiting for {what}")

        def row(site: str) -> list[str]:
            # One script call reads the row atomically (the page re-renders every 5 s).
            return list(driver.execute_script(
                "const r = Array.from(document.querySelectorAll('#sites tr'))"
                ".find(r => r.dataset.site === arguments[0]);"
                "return r ? Array.from(r.cells).map(c => c.textContent) : [];", site))

        driver.get(server.url + "/")
        until(lambda d: d.find_element(By.ID, "refresh").get_attribute("data-ok") != "0",
              "the first render")
        assert driver.execute_script(
            "return Array.from(document.querySelectorAll('#sites tr'))"
            ".map(r => r.dataset.site)") == ["alpha", "bravo", "delta", "echo"]
        alpha = row("alpha")
        assert alpha[1] == "held" and alpha[2] == "node-alpha" and alpha[3] == "1"
        assert alpha[7] == "1" and alpha[8] == "1" and "wait-a1" in alpha[9]
        assert row("bravo")[1] == "released"
        assert row("delta")[1] == "unreadable" and "malformed" in row("delta")[9]
        assert row("echo")[2] == EVIL_HOLDER  # shown as text, never as markup
        assert driver.execute_script("return window.__pwned === undefined")
        assert not driver.find_elements(By.CSS_SELECTOR, "#sites img")
        assert driver.execute_script(
            "return document.querySelector('.total[data-name=\"failed in 24 h\"] b')"
            ".textContent") == "1"

        # A site changes; the next read shows it without reloading the page.
        sites.update("bravo", good_n=2)
        server.read_once()
        until(lambda d: row("bravo")[6:7] == ["3"], "bravo's new count")
        # The bucket goes away: the page keeps the last read and says why.
        proxy.set_mode("refuse")
        server.read_once()
        until(lambda d: d.find_element(By.ID, "banner").is_displayed(), "the outage banner")
        assert "failed" in driver.execute_script(
            "return document.getElementById('banner').textContent")
        assert row("alpha")[1] == "held"
        problems = [e["message"] for e in driver.get_log("browser")
                    if e["level"] in ("SEVERE", "WARNING")]
        assert not problems, problems
    finally:
        driver.quit()
        proxy.set_mode("pass")


def test_the_serve_command_runs_and_stops_on_sigterm(sites: Sites, tmp_path: Path) -> None:
    import os
    import signal
    import sys

    from tests.conftest import wait_until
    from tests.dr.conftest import free_port

    sites.build("solo", good_n=1)
    port = free_port()
    edge_bin = str(Path(sys.executable).with_name("edge"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([edge_bin, "fleet", "--replica", sites.url, "--cache-dir",
                             str(tmp_path / "c"), "serve", "--listen", f"127.0.0.1:{port}",
                             "--refresh", "5"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return get(url, "/v1/fleet")[0] == 200
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_until(up, 30, "edge fleet serve answering")
        assert value(url, "edge_fleet_site_workflows", site="solo", status="SUCCEEDED") == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    # A port in use is one line and exit 1.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        out = subprocess.run([edge_bin, "fleet", "--replica", sites.url, "--cache-dir",
                              str(tmp_path / "c"), "serve", "--listen", f"127.0.0.1:{busy}"],
                             env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stderr.startswith("error: --listen"), out.stderr
    assert "Traceback" not in out.stderr


def test_a_token_guards_the_data_and_the_page_sends_it(sites: Sites, tmp_path: Path) -> None:
    from tests.ops.test_dashboard import _browser_paths

    sites.build("solo", good_n=1)
    fleet = open_fleet(sites.url, tmp_path / "cache", persist_seen=False)
    server = FleetServer(fleet, "127.0.0.1", 0, refresh=3600, token="s3cret").start()
    try:
        url = server.url
        for path in ("/v1/fleet", "/metrics"):
            code, headers, body = get(url, path)
            assert code == 401 and headers["www-authenticate"] == "Bearer", path
            assert json.loads(body)["error"]["code"] == "unauthorized"
        for path in ("/", "/fleet.js", "/fleet.css", "/healthz"):
            assert get(url, path)[0] == 200, path
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        conn.request("GET", "/v1/fleet", headers={"Authorization": "Bearer s3cret"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["sites"][0]["site"] == "solo"
        conn.close()

        webdriver = pytest.importorskip("selenium.webdriver")
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait

        paths = _browser_paths()
        if paths is None:
            pytest.skip("chromium and chromedriver are not installed (scripts/system-deps)")
        opts = webdriver.ChromeOptions()
        opts.binary_location = paths[0]
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(options=opts, service=Service(executable_path=paths[1]))
        try:
            wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.05)
            driver.get(url + "/")
            wait.until(lambda d: d.execute_script(
                "return !document.getElementById('banner').hidden"), "the 401 banner")
            assert "token" in driver.execute_script(
                "return document.getElementById('banner').textContent")
            driver.get("about:blank")
            driver.get(url + "/#token=s3cret")
            wait.until(lambda d: d.execute_script(
                "return document.querySelectorAll('#sites tr').length") == 1, "the site row")
            assert "token" not in driver.current_url  # dropped from the address bar
        finally:
            driver.quit()
    finally:
        server.stop()


def test_a_site_nested_too_deep_is_one_row_of_the_served_view(sites: Sites,
                                                               tmp_path: Path) -> None:
    sites.build("good", good_n=1)
    sites.put("sites/deep/lease.json", b"[" * 100_000 + b"]" * 100_000)
    fleet = open_fleet(sites.url, tmp_path / "cache", persist_seen=False)
    server = FleetServer(fleet, "127.0.0.1", 0, refresh=3600).start()
    try:
        code, _, body = get(server.url, "/v1/fleet")
        assert code == 200
        doc = json.loads(body)
        assert doc["last_error"] is None
        rows = {s["site"]: s for s in doc["sites"]}
        assert rows["good"]["error"] is None and rows["good"]["workflows"]["SUCCEEDED"] == 1
        assert rows["deep"]["error"]["code"] == "data_error"
        assert "nests too deep" in rows["deep"]["error"]["message"]
        assert value(server.url, "edge_fleet_site_up", site="good") == 1.0
        assert value(server.url, "edge_fleet_site_up", site="deep") == 0.0
        assert value(server.url, "edge_fleet_sites") == 2.0
    finally:
        server.stop()
