"""Alert rules and dashboard queries against what a node really exports, with the real
Prometheus toolchain: promtool (check rules/config/metrics, rule unit tests) and a
Prometheus server that scrapes a running node."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from tests.ops.conftest import (
    DEPLOY,
    LiveNode,
    free_port,
    http_get,
    promql_equality_matchers,
    promql_metric_names,
    system_tool,
    wait_until,
)

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "edge.json"

# DESIGN.md section 5: the metric names that are contract, as exposed on /metrics.
CONTRACT_SAMPLES = {
    "edge_workflows_started_total", "edge_workflows_finished_total", "edge_workflows",
    "edge_steps_total", "edge_step_duration_seconds_bucket", "edge_step_duration_seconds_sum",
    "edge_step_duration_seconds_count", "edge_recovered_workflows_total",
    "edge_replication_lag_seconds", "edge_replication_up", "edge_leader", "edge_db_bytes",
    "edge_wal_bytes",
}
# Series Prometheus makes itself for every target; a rule may use them.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return out


def dashboard_variable_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    names = set()
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query.strip())
        assert m, f"dashboard variable {var['name']}: unexpected query {query!r}"
        names.add(m.group(1))
    return names


def grafana_to_promql(expr: str) -> str:
    """The query Grafana would send, for a Prometheus that has no Grafana variables."""
    return expr.replace("$__rate_interval", "1m").replace('=~"$instance"', '=~".*"')


# ---- names -------------------------------------------------------------------------------


def test_node_exports_every_contract_metric(live_node: LiveNode) -> None:
    missing = CONTRACT_SAMPLES - live_node.sample_names
    assert not missing, f"DESIGN.md section 5 names missing from /metrics: {sorted(missing)}"


def test_alert_rules_use_only_exported_metrics(live_node: LiveNode) -> None:
    known = live_node.sample_names | PROMETHEUS_SYNTHETIC
    rules = alert_rules()
    assert len(rules) >= 5
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        unknown = names - known
        assert not unknown, f"alert {rule['alert']} reads {sorted(unknown)}, not exported"


def test_alert_label_values_are_ones_the_node_exports(live_node: LiveNode) -> None:
    """`status="FAILED"` must match the node's spelling, or the alert never fires."""
    for rule in alert_rules():
        for metric, label, value in promql_equality_matchers(rule["expr"]):
            if not metric.startswith("edge_"):
                continue
            values = {labels.get(label) for name, labels, _ in live_node.samples
                      if name == metric}
            exported = sorted(map(str, values))
            assert value in values, (f"alert {rule['alert']}: {metric}{{{label}={value!r}}} "
                                     f"matches nothing; the node exports {exported}")


def test_alerts_cover_the_operational_failures() -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    wanted = {
        "EdgeReplicationLagHigh": "edge_replication_lag_seconds",
        "EdgeSidecarDown": "edge_replication_up",
        "EdgeWorkflowsFailing": "edge_workflows_finished_total",
        "EdgeStandbyTooLong": "edge_leader",
        "EdgeNodeDown": "up",
        "EdgeWriteErrors": "edge_write_errors_total",
        "EdgeReplicaDrillFailing": "edge_replica_drill_failures_total",
        "EdgeReplicaDrillStale": "edge_replica_drill_last_success_timestamp_seconds",
    }
    for alert, metric in wanted.items():
        assert alert in by_name, f"missing alert {alert}"
        assert metric in promql_metric_names(by_name[alert]["expr"]), alert
    for rule in by_name.values():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_dashboard_queries_use_only_exported_metrics(live_node: LiveNode) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    used: set[str] = set()
    for where, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = names - live_node.sample_names
        assert not unknown, f"{where} reads {sorted(unknown)}, not exported by the node"
        used |= names
    variables = dashboard_variable_metrics()
    assert variables <= live_node.sample_names, variables - live_node.sample_names
    # Every contract metric has a panel.
    assert CONTRACT_SAMPLES <= used, sorted(CONTRACT_SAMPLES - used)


def test_dashboard_is_importable_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_promql_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, step) (rate(edge_step_duration_seconds_bucket'
            '{instance=~"$instance"}[$__rate_interval]))) > 2 and on(job, instance) up == 1')
    assert promql_metric_names(expr) == {"edge_step_duration_seconds_bucket", "up"}
    assert promql_metric_names("edge_wal_bytes > 512 * 1024") == {"edge_wal_bytes"}
    assert promql_equality_matchers('x{a="b", c=~"d"}') == [("x", "a", "b")]


# ---- promtool ------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    promtool = system_tool("promtool", "prometheus")
    proc = subprocess.run([promtool, "check", "rules", str(ALERTS)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def scrape_authorization() -> dict[str, Any]:
    """The edge job's authorization block: the read-only token from a file."""
    config = yaml.safe_load(PROM_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "edge"]
    auth: dict[str, Any] = job["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and "credentials" not in auth
    return auth


def test_scrape_config_uses_the_read_only_token_compose_mounts() -> None:
    path = scrape_authorization()["credentials_file"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    (secret,) = compose["services"]["prometheus"]["secrets"]
    assert path == f"/run/secrets/{secret}"
    edge = compose["services"]["edge"]
    assert edge["environment"]["EDGE_API_READ_TOKEN_FILE"] == path
    assert compose["secrets"][secret]["file"]


def test_promtool_check_config(tmp_path: Path) -> None:
    promtool = system_tool("promtool", "prometheus")
    # promtool stats the credentials file: stand one in where a Secret would be mounted.
    token = tmp_path / "read-token"
    token.write_text("t\n")
    config = PROM_CONFIG.read_text().replace(scrape_authorization()["credentials_file"],
                                             str(token))
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "prometheus.yml").write_text(config)
    proc = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_check_metrics_on_live_output(live_node: LiveNode) -> None:
    promtool = system_tool("promtool", "prometheus")
    proc = subprocess.run([promtool, "check", "metrics"], input=live_node.metrics_text,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


# Unit tests of the alert logic (expressions and `for:`), fed to `promtool test rules`.
# Annotations are prose: they are stripped from the copy under test so that editing a
# description does not break these; `promtool check rules` still parses their templates.
RULE_TESTS: list[dict[str, Any]] = [
    {"interval": "1m",
     "input_series": [
         {"series": 'edge_replication_lag_seconds{job="edge",instance="a"}',
          "values": "0 0 45x10"},
         {"series": 'edge_replication_lag_seconds{job="edge",instance="b"}',
          "values": "0.4x12"}],
     "alert_rule_test": [
         {"eval_time": "3m", "alertname": "EdgeReplicationLagHigh", "exp_alerts": []},
         {"eval_time": "5m", "alertname": "EdgeReplicationLagHigh", "exp_alerts": [
             {"exp_labels": {"severity": "warning", "job": "edge", "instance": "a"}}]},
         {"eval_time": "10m", "alertname": "EdgeReplicationLagCritical", "exp_alerts": []}]},
    {"interval": "1m",
     "input_series": [
         # a: ready, replica configured, sidecar down; b: no replica: quiet;
         # c: replica configured but a standby (never ready): quiet.
         {"series": 'edge_replication_up{job="edge",instance="a"}', "values": "1 0x5"},
         {"series": 'edge_info{job="edge",instance="a",replication="embedded"}',
          "values": "1x5"},
         {"series": 'edge_ready{job="edge",instance="a"}', "values": "1x5"},
         {"series": 'edge_replication_up{job="edge",instance="b"}', "values": "0x5"},
         {"series": 'edge_info{job="edge",instance="b",replication="none"}', "values": "1x5"},
         {"series": 'edge_ready{job="edge",instance="b"}', "values": "1x5"},
         {"series": 'edge_replication_up{job="edge",instance="c"}', "values": "0x5"},
         {"series": 'edge_info{job="edge",instance="c",replication="external"}',
          "values": "1x5"},
         {"series": 'edge_ready{job="edge",instance="c"}', "values": "0x5"}],
     "alert_rule_test": [
         {"eval_time": "2m", "alertname": "EdgeSidecarDown", "exp_alerts": []},
         {"eval_time": "4m", "alertname": "EdgeSidecarDown", "exp_alerts": [
             {"exp_labels": {"severity": "critical", "job": "edge", "instance": "a"}}]}]},
    {"interval": "1m",
     "input_series": [
         {"series": 'edge_workflows_finished_total{job="edge",instance="a",workflow="fulfil",'
                    'status="FAILED"}', "values": "0 0 0 1 2 2"},
         {"series": 'edge_workflows_finished_total{job="edge",instance="a",workflow="fulfil",'
                    'status="SUCCEEDED"}', "values": "0 5 10 15 20 25"}],
     "alert_rule_test": [
         {"eval_time": "2m", "alertname": "EdgeWorkflowsFailing", "exp_alerts": []},
         {"eval_time": "5m", "alertname": "EdgeWorkflowsFailing", "exp_alerts": [
             {"exp_labels": {"severity": "warning", "job": "edge", "instance": "a",
                             "workflow": "fulfil"}}]}]},
    {"interval": "1m",
     "input_series": [
         {"series": 'edge_leader{job="edge",instance="standby"}', "values": "0x30"},
         {"series": 'up{job="edge",instance="standby"}', "values": "1x30"},
         {"series": 'edge_leader{job="edge",instance="leader"}', "values": "1x30"},
         {"series": 'up{job="edge",instance="leader"}', "values": "1x30"},
         {"series": 'up{job="edge",instance="dead"}', "values": "1 1 0x10"}],
     "alert_rule_test": [
         {"eval_time": "10m", "alertname": "EdgeStandbyTooLong", "exp_alerts": []},
         {"eval_time": "16m", "alertname": "EdgeStandbyTooLong", "exp_alerts": [
             {"exp_labels": {"severity": "warning", "job": "edge", "instance": "standby"}}]},
         {"eval_time": "3m", "alertname": "EdgeNodeDown", "exp_alerts": []},
         {"eval_time": "5m", "alertname": "EdgeNodeDown", "exp_alerts": [
             {"exp_labels": {"severity": "critical", "job": "edge", "instance": "dead"}}]}]},
    {"interval": "1m",
     "input_series": [
         # a: the disk fills at minute 3 and refuses writes for 2 minutes; b: healthy.
         {"series": 'edge_write_errors_total{job="edge",instance="a",kind="disk_full"}',
          "values": "0 0 0 4 9 9 9 9 9 9 9 9 9"},
         {"series": 'edge_write_errors_total{job="edge",instance="a",kind="io_error"}',
          "values": "0x12"},
         {"series": 'edge_write_errors_total{job="edge",instance="b",kind="disk_full"}',
          "values": "0x12"}],
     "alert_rule_test": [
         {"eval_time": "2m", "alertname": "EdgeWriteErrors", "exp_alerts": []},
         {"eval_time": "4m", "alertname": "EdgeWriteErrors", "exp_alerts": [
             {"exp_labels": {"severity": "critical", "job": "edge", "instance": "a",
                             "kind": "disk_full"}}]},
         {"eval_time": "12m", "alertname": "EdgeWriteErrors", "exp_alerts": []}]},
    # A drill that found damage fires at once; one without a verdict does not.
    {"interval": "1m",
     "input_series": [
         {"series": 'edge_replica_drill_failures_total{job="edge",instance="a",'
                    'kind="restore_failed"}', "values": "0 0 1 1 1 1 1 1 1 1"},
         {"series": 'edge_replica_drill_failures_total{job="edge",instance="b",'
                    'kind="unavailable"}', "values": "0 0 1 2 3 4 5 6 7 8"}],
     "alert_rule_test": [
         {"eval_time": "1m", "alertname": "EdgeReplicaDrillFailing", "exp_alerts": []},
         {"eval_time": "3m", "alertname": "EdgeReplicaDrillFailing", "exp_alerts": [
             {"exp_labels": {"severity": "critical", "job": "edge", "instance": "a",
                             "kind": "restore_failed"}}]}]},
    # Drills every 600 s: a node whose last success stopped at t=0 alerts after 3
    # intervals (+5 m); one that keeps succeeding, or does not drill, never does.
    {"interval": "1m",
     "input_series": [
         {"series": 'edge_replica_drill_last_success_timestamp_seconds{job="edge",'
                    'instance="stuck"}', "values": "0x60"},
         {"series": 'edge_replica_drill_interval_seconds{job="edge",instance="stuck"}',
          "values": "600x60"},
         {"series": 'edge_replica_drill_last_success_timestamp_seconds{job="edge",'
                    'instance="fine"}', "values": "0+60x60"},
         {"series": 'edge_replica_drill_interval_seconds{job="edge",instance="fine"}',
          "values": "600x60"},
         {"series": 'edge_replica_drill_last_success_timestamp_seconds{job="edge",'
                    'instance="off"}', "values": "0x60"},
         {"series": 'edge_replica_drill_interval_seconds{job="edge",instance="off"}',
          "values": "0x60"}],
     "alert_rule_test": [
         {"eval_time": "30m", "alertname": "EdgeReplicaDrillStale", "exp_alerts": []},
         {"eval_time": "40m", "alertname": "EdgeReplicaDrillStale", "exp_alerts": [
             {"exp_labels": {"severity": "warning", "job": "edge", "instance": "stuck"}}]}]},
]


def test_promtool_rule_unit_tests(tmp_path: Path) -> None:
    promtool = system_tool("promtool", "prometheus")
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": RULE_TESTS}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    proc = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# ---- a real Prometheus server scraping a running node ---------------------------------------


def _prom_api(base: str, path: str, **params: str) -> dict[str, Any] | None:
    query = urllib.parse.urlencode(params)
    status, body = http_get(f"{base}{path}?{query}" if query else f"{base}{path}")
    if status == 0:
        return None
    try:
        return json.loads(body)  # type: ignore[no-any-return]
    except ValueError:  # 503 "Service Unavailable" while Prometheus starts
        return None


def test_prometheus_scrapes_a_running_node(live_node: LiveNode, tmp_path: Path) -> None:
    prometheus = system_tool("prometheus", "prometheus")
    port = free_port()
    token = tmp_path / "read-token"
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "edge", "scrape_interval": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{live_node.port}"]}],
                            # deploy/'s block, with the node's read-only token in the file
                            "authorization": {**scrape_authorization(),
                                              "credentials_file": str(token)}}],
    }
    token.write_text(live_node.read_token + "\n")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        def leader() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" +
                                     (tmp_path / "prometheus.log").read_text()[-3000:])
            res = _prom_api(base, "/api/v1/query", query='edge_leader{job="edge"}')
            if res and res["status"] == "success" and res["data"]["result"]:
                return res["data"]["result"][0]  # type: ignore[no-any-return]
            return None

        sample = wait_until(leader, timeout=30, what="Prometheus to scrape edge_leader",
                            interval=0.1)
        assert isinstance(sample, dict)
        assert sample["metric"]["instance"] == f"127.0.0.1:{live_node.port}"
        assert sample["value"][1] == "1"

        targets = _prom_api(base, "/api/v1/targets")
        assert targets is not None
        health = [t["health"] for t in targets["data"]["activeTargets"]]
        assert health == ["up"], targets

        # Every name the rules and the dashboard read is stored by Prometheus.
        names = _prom_api(base, "/api/v1/label/__name__/values")
        assert names is not None
        stored = set(names["data"])
        wanted = set().union(*(promql_metric_names(e) for _, e in dashboard_queries()))
        wanted |= set().union(*(promql_metric_names(r["expr"]) for r in alert_rules()))
        assert wanted <= stored, sorted(wanted - stored)

        # Every dashboard query is valid PromQL for this Prometheus.
        for where, expr in dashboard_queries():
            res = _prom_api(base, "/api/v1/query", query=grafana_to_promql(expr))
            assert res is not None and res["status"] == "success", (where, res)

        # The rules load and evaluate against real data without errors.
        def rules_evaluated() -> list[dict[str, Any]] | None:
            res = _prom_api(base, "/api/v1/rules")
            if not res or res["status"] != "success" or not res["data"]["groups"]:
                return None
            rules = res["data"]["groups"][0]["rules"]
            if any(r.get("lastEvaluation", "").startswith("0001-") for r in rules):
                return None  # not evaluated yet
            return rules  # type: ignore[no-any-return]

        rules = wait_until(rules_evaluated, timeout=15, what="the alert rules to evaluate",
                           interval=0.1)
        assert isinstance(rules, list) and len(rules) == len(alert_rules())
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad
        active = {r["name"] for r in rules if r["state"] != "inactive"}
        # A node without a replica: edge_replication_up is 0, yet nothing is down.
        assert "EdgeSidecarDown" not in active
        assert "EdgeNodeDown" not in active
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
