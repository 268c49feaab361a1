"""The deploy kit for many sites: the kustomize overlays render (kubectl kustomize) into
one StatefulSet per site that passes the schema validator and every check of the
single-site manifest, each with its own names, label and replica prefix under one
bucket; the fleet view and the federation config validate too."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops import test_deploy as single
from tests.ops.conftest import DEPLOY, system_tool, venv_tool
from tests.ops.test_deploy import KUBERNETES_VERSION, env_of

FLEET = DEPLOY / "k8s" / "fleet"
SITES = sorted(p.name for p in (FLEET / "sites").iterdir() if p.is_dir())


def kubectl() -> str:
    """kubectl with its built-in kustomize v4+ (``labels:`` and ``patches:`` need it)."""
    found = shutil.which("kubectl")
    if found is None:
        # Debian's kubernetes-client is 1.20 (kustomize v2, which lacks both fields), and
        # the project installs only Debian, PyPI and npm packages.
        pytest.skip("kubectl with kustomize v4+ is not installed (Debian has none)")
    out = subprocess.run([found, "version", "--client"], capture_output=True, text=True,
                         timeout=30).stdout
    m = re.search(r"Kustomize Version: v(\d+)", out)
    if not m or int(m.group(1)) < 4:
        pytest.skip(f"this kubectl's kustomize is older than v4: {out.strip()!r}")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def validate(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    proc = subprocess.run([venv_tool("kubernetes-validate"), "--strict", "--quiet",
                           "-k", KUBERNETES_VERSION, str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_site_renders_and_validates(tmp_path: Path) -> None:
    assert len(SITES) >= 2
    docs = render(FLEET / "sites")
    validate(docs, tmp_path)
    sets = [d for d in docs if d["kind"] == "StatefulSet"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert len(sets) == len(SITES)
    replicas, names = set(), set()
    for sts in sets:
        site = sts["metadata"]["labels"]["edge.site"]
        assert site in SITES
        name = sts["metadata"]["name"]
        assert name == f"edge-{site}" and name not in names
        names.add(name)
        spec = sts["spec"]
        # The headless Service each pod's stable name needs, renamed with it.
        svc = services[spec["serviceName"]]
        assert svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]
        # Selectors carry the site: two sites' pods never match one StatefulSet.
        assert spec["selector"]["matchLabels"]["edge.site"] == site
        assert spec["template"]["metadata"]["labels"]["edge.site"] == site
        (edge,) = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "edge"]
        replica = env_of(edge)["EDGE_REPLICA"]
        assert replica == f"s3://my-edge-bucket/sites/{site}"
        replicas.add(replica)
        # Every promise of the single-site manifest holds for each generated one.
        one = tmp_path / f"{site}.yaml"
        one.write_text(yaml.safe_dump_all([svc, sts]))
        single.test_k8s_statefulset(one)
    assert len(replicas) == len(SITES), "two sites share a replica prefix"


def test_each_site_overlay_renders_alone() -> None:
    for site in SITES:
        docs = render(FLEET / "sites" / site)
        assert sorted(d["kind"] for d in docs) == ["Service", "StatefulSet"], site


@pytest.mark.parametrize("site", SITES)
def test_the_sites_list_names_every_overlay(site: str) -> None:
    listed = yaml.safe_load((FLEET / "sites" / "kustomization.yaml").read_text())["resources"]
    assert site in listed


def test_the_fleet_view_renders_validates_and_is_read_only(tmp_path: Path) -> None:
    docs = render(FLEET / "view")
    validate(docs, tmp_path)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["fleet", "serve"]
    env = env_of(c)
    # The prefix above the sites' prefixes.
    assert env["EDGE_FLEET_REPLICA"] == "s3://my-edge-bucket/sites"
    assert env["EDGE_FLEET_LISTEN"].startswith("0.0.0.0:")
    cache = env["EDGE_FLEET_CACHE"]
    assert any(m["mountPath"] == cache for m in c["volumeMounts"])
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    from edge.config import parse_listen

    port = parse_listen(env["EDGE_FLEET_LISTEN"])[1]
    assert c["ports"][0]["containerPort"] == port


def test_federation_config_passes_promtool() -> None:
    promtool = system_tool("promtool", "prometheus")
    proc = subprocess.run([promtool, "check", "config",
                           str(DEPLOY / "prometheus" / "federation.yml")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "federation.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["edge-federate"]["metrics_path"] == "/federate"
    assert jobs["edge-federate"]["honor_labels"] is True
    assert jobs["edge-fleet"]["static_configs"][0]["targets"] == ["edge-fleet:8090"]
    assert "fleet-alerts.yml" in cfg["rule_files"]
