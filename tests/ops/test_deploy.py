"""Every manifest under deploy/ parses, passes its schema, and says what the node needs:
probes on the right endpoints, stop budgets above the node's shutdown, no restore init
container, a sidecar variant wired to the node's socket, a hardened systemd unit."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import Settings
from edge.errors import ConfigError
from tests.ops.conftest import (
    DEPLOY,
    REPO,
    dockerfile_env,
    dockerfile_instructions,
    system_tool,
    venv_tool,
)
from tests.ops.test_dockerfile import run_env_vars

K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
KUBERNETES_VERSION = "1.29.0"  # the oldest with native sidecars on by default


def seconds(value: str | int | float) -> float:
    """Compose/systemd durations: 30, "30s", "1m30s", "500ms"."""
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?", value.strip()):
        total += float(number) * {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600}[unit]
    return total


def node_stop_budget() -> float:
    """The longest a planned stop may take (DESIGN.md section 4, step 8): running steps
    get the grace period; the replica barrier of the lag monitor (<= lease renew
    interval), the sidecar flush (its shutdown-sync-timeout) and Litestream's exit
    (2 s before SIGKILL) follow; the lease release is one S3 request."""
    s = Settings()
    cfg = yaml.safe_load((REPO / "litestream.yml").read_text().replace(
        "${EDGE_SIDECAR_SOCKET}", "/x"))
    flush = seconds(cfg["shutdown-sync-timeout"])
    return s.grace_period + s.lease_renew + flush + 2.0 + 1.0


def k8s_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def statefulset(path: Path) -> dict[str, Any]:
    sets = [d for d in k8s_docs(path) if d["kind"] == "StatefulSet"]
    assert len(sets) == 1, path
    return sets[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# ---- every file parses --------------------------------------------------------------------


def test_deploy_has_every_shape() -> None:
    for rel in ("compose.yaml", "k8s/statefulset.yaml", "k8s/statefulset-sidecar.yaml",
                "systemd/edge.service", "prometheus/alerts.yml", "prometheus/prometheus.yml",
                "grafana/edge.json", "README.md"):
        assert (DEPLOY / rel).is_file(), rel


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs), path


def test_grafana_json_parses() -> None:
    assert isinstance(json.loads((DEPLOY / "grafana" / "edge.json").read_text()), dict)


def fleet_env_vars() -> set[str]:
    """The EDGE_* variables `edge fleet` and `edge fleet serve` read (deploy/k8s/fleet/view)."""
    import typer.main

    from edge.cli import app as cli_app

    group = typer.main.get_command(cli_app).commands["fleet"]  # type: ignore[attr-defined]
    params = [*group.params, *(p for c in group.commands.values() for p in c.params)]
    return {p.envvar for p in params if isinstance(getattr(p, "envvar", None), str)}


def test_every_edge_variable_is_one_edge_reads() -> None:
    """A typo (EDGE_REPLICATON=...) would be silently ignored by the node."""
    known = run_env_vars() | fleet_env_vars() | {"EDGE_DEMO_PAYMENTS", "EDGE_DEMO_LATENCY"}
    files = [*YAML_FILES, DEPLOY / "systemd" / "edge.service", DEPLOY / "README.md",
             REPO / "Dockerfile", REPO / "litestream.yml"]
    for path in files:
        used = set(re.findall(r"\bEDGE_[A-Z_]+\b", path.read_text()))
        unknown = used - known
        assert not unknown, f"{path.relative_to(REPO)}: {sorted(unknown)} are not read by edge"


# ---- compose ---------------------------------------------------------------------------------


def test_compose_schema() -> None:
    proc = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema",
                           "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_trial() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    edge = services["edge"]
    assert edge["build"]["context"] == ".." and edge["build"]["dockerfile"] == "Dockerfile"
    assert seconds(edge["stop_grace_period"]) > node_stop_budget(), (
        edge["stop_grace_period"], node_stop_budget())
    assert edge.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert "/readyz" in " ".join(edge["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in edge["volumes"])

    # The replica points at the S3-compatible service of this file.
    replica = edge["environment"]["EDGE_REPLICA"]
    m = re.fullmatch(r"s3://([a-z0-9.-]+)/[\w/-]+\?endpoint=http://(\w+):(\d+)(&region=[\w-]+)?",
                     replica)
    assert m, replica
    bucket, host, port = m.group(1), m.group(2), m.group(3)
    assert host in services and host != "edge"
    assert port in " ".join(map(str, services[host].get("ports", []))) or \
        services[host].get("environment", {}).get("MOTO_PORT") == port
    assert edge["environment"]["AWS_ACCESS_KEY_ID"] and edge["environment"]["AWS_SECRET_ACCESS_KEY"]
    # Something creates the bucket before edge starts, and edge waits for it.
    creator = [name for name, svc in services.items()
               if bucket in json.dumps(svc.get("command", "")) and name != "edge"]
    assert creator, "no service creates the bucket"
    assert edge["depends_on"][creator[0]]["condition"] == "service_completed_successfully"
    # Ports published on loopback only: a trial must not expose the API to the network.
    for name, svc in services.items():
        for mapping in svc.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), (name, mapping)
    # Prometheus in the trial loads this directory's config and rules.
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./prometheus/prometheus.yml" in mounts and "./prometheus/alerts.yml" in mounts
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert "edge:8080" in targets


# ---- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_schema(path: Path) -> None:
    proc = subprocess.run([venv_tool("kubernetes-validate"), "--strict", "--quiet",
                           "-k", KUBERNETES_VERSION, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_statefulset(path: Path) -> None:
    sts = statefulset(path)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["terminationGracePeriodSeconds"] > node_stop_budget()
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    (edge,) = [c for c in pod["containers"] if c["name"] == "edge"]
    data_mounts = [m for m in edge["volumeMounts"] if m["mountPath"] == "/data"]
    assert data_mounts and data_mounts[0]["name"] in claims, "the database lives on the PVC"
    assert env_of(edge).get("EDGE_DATA_DIR", "/data") == "/data"
    assert env_of(edge)["EDGE_LISTEN"].startswith("0.0.0.0:")
    assert edge["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert edge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert edge.get("args", ["run"]) == ["run"] and "command" not in edge
    assert env_of(edge)["EDGE_REPLICA"].startswith("s3://")

    # Non-root, as the image's USER.
    user = [i.args for i in dockerfile_instructions() if i.name == "USER"][-1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert edge["securityContext"]["allowPrivilegeEscalation"] is False

    # No raw `litestream restore` anywhere: the node's boot decides about restores.
    for container in pod.get("initContainers", []) + pod["containers"]:
        words = " ".join(container.get("command", []) + container.get("args", []))
        assert "restore" not in words, f"{container['name']} runs a restore: {words}"


def test_k8s_embedded_variant() -> None:
    pod = statefulset(REPO / "deploy/k8s/statefulset.yaml")["spec"]["template"]["spec"]
    assert not pod.get("initContainers")
    (edge,) = pod["containers"]
    assert env_of(edge).get("EDGE_REPLICATION", "embedded") == "embedded"


def test_k8s_sidecar_variant() -> None:
    pod = statefulset(REPO / "deploy/k8s/statefulset-sidecar.yaml")["spec"]["template"]["spec"]
    (edge,) = [c for c in pod["containers"] if c["name"] == "edge"]
    (sidecar,) = [c for c in pod["initContainers"] if c["name"] == "litestream"]
    # A native sidecar: starts before edge, is stopped after edge has flushed and exited.
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"][:2] == ["litestream", "replicate"]
    config = sidecar["command"][sidecar["command"].index("-config") + 1]
    copies = [i.args.split() for i in dockerfile_instructions() if i.name == "COPY"]
    assert ["litestream.yml", config] in copies, "the image ships litestream.yml there"
    assert sidecar["image"] == edge["image"], "one image: the pinned litestream"
    assert "-no-expand-env" not in sidecar["command"], "litestream.yml needs ${...} expanded"

    node_env, side_env = env_of(edge), env_of(sidecar)
    assert node_env["EDGE_REPLICATION"] == "external"
    socket = node_env["EDGE_SIDECAR_SOCKET"]
    assert side_env["EDGE_SIDECAR_SOCKET"] == socket
    assert len(socket.encode()) < 100

    def mount_for(container: dict[str, Any], path: str) -> str:
        best = max((m for m in container["volumeMounts"]
                    if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")),
                   key=lambda m: len(m["mountPath"]))
        return str(best["name"])

    shared = mount_for(edge, socket)
    assert mount_for(sidecar, socket) == shared
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[shared], "the socket lives on a shared emptyDir"
    # The node registers the absolute database path: both see the PVC at the same place.
    assert mount_for(sidecar, "/data/edge.db") == mount_for(edge, "/data/edge.db") == "data"
    assert sidecar["envFrom"] == edge["envFrom"], "both need the S3 credentials"
    probe = " ".join(sidecar["startupProbe"]["exec"]["command"])
    assert socket in probe


# ---- systemd ---------------------------------------------------------------------------------


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        key, _, value = line.partition("=")
        assert current is not None
        sections[current].append((key.strip(), value.strip()))
    return sections


def test_systemd_unit() -> None:
    unit = unit_entries(DEPLOY / "systemd" / "edge.service")
    svc = dict(unit["Service"])
    assert svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM"
    assert svc["KillMode"] == "mixed", "SIGTERM to the node only: it stops Litestream itself"
    assert seconds(svc["TimeoutStopSec"]) == 30 > node_stop_budget()
    program, *args = svc["ExecStart"].split()
    assert program.endswith("/bin/edge") and args == ["run"], svc["ExecStart"]
    assert svc["User"] not in ("root", "0")
    assert "2" in svc["RestartPreventExitStatus"].split()  # bad settings: do not loop
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes",
                       "CapabilityBoundingSet": ""}.items():
        assert svc[key] == value, key
    env = dict(v.split("=", 1) for k, v in unit["Service"] if k == "Environment")
    assert env["EDGE_DATA_DIR"] == "/var/lib/" + svc["StateDirectory"]
    assert env["EDGE_LISTEN"].startswith("127.0.0.1:")  # behind a proxy or Prometheus only
    filters = [v for k, v in unit["Service"] if k == "SystemCallFilter"]
    assert not any("@privileged" in f for f in filters), "setpriv needs capset"
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = system_tool("systemd-analyze", "systemd")
    text = (DEPLOY / "systemd" / "edge.service").read_text()
    edge_bin = Path(venv_tool("edge"))
    # Verify needs the program and working directory to exist on this machine.
    text = text.replace("/opt/edge/bin/edge", str(edge_bin)).replace("/srv/edge", str(tmp_path))
    unit = tmp_path / "edge.service"
    unit.write_text(text)
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), (
        proc.stdout + proc.stderr)


# ---- README ----------------------------------------------------------------------------------


def test_readme_explains_shapes_budget_and_alerts() -> None:
    text = (DEPLOY / "README.md").read_text()
    for needle in ("compose.yaml", "statefulset.yaml", "statefulset-sidecar.yaml",
                   "edge.service", "alerts.yml", "edge.json", "--replication external",
                   "terminationGracePeriodSeconds", "stop_grace_period", "TimeoutStopSec"):
        assert needle in text, needle
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] in text, f"README does not explain {rule['alert']}"


def test_image_env_matches_k8s_defaults() -> None:
    image = dockerfile_env(dockerfile_instructions())
    for path in K8S:
        pod = statefulset(path)["spec"]["template"]["spec"]
        (edge,) = [c for c in pod["containers"] if c["name"] == "edge"]
        for key, value in env_of(edge).items():
            if key in image and key in ("EDGE_DATA_DIR", "EDGE_LISTEN"):
                assert value == image[key], (path.name, key)


# ---- API tokens ------------------------------------------------------------------------------


def _no_token_values(env: list[dict[str, Any]], where: str) -> None:
    for e in env:
        if "TOKEN" in e["name"]:
            assert e["name"].endswith("_FILE") and e["value"].startswith("/run/secrets/"), (
                where, e)
    names = {e["name"] for e in env}
    assert "EDGE_INSECURE_NO_TOKEN" not in names, where


def test_the_image_listen_needs_the_token_the_manifests_mount() -> None:
    """Without a token the image's own listen is refused; every shape gives it one."""
    listen = dockerfile_env(dockerfile_instructions())["EDGE_LISTEN"]
    with pytest.raises(ConfigError):
        Settings(listen=listen).validate()
    Settings(listen=listen, api_token="t", api_read_token="r").validate()


def test_compose_takes_the_tokens_from_secrets() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    edge = doc["services"]["edge"]
    env = edge["environment"]
    assert "EDGE_API_TOKEN" not in env and "EDGE_API_READ_TOKEN" not in env
    assert "EDGE_INSECURE_NO_TOKEN" not in env
    for var in ("EDGE_API_TOKEN_FILE", "EDGE_API_READ_TOKEN_FILE"):
        secret = env[var].removeprefix("/run/secrets/")
        assert env[var] == f"/run/secrets/{secret}" and secret in edge["secrets"], var
        assert doc["secrets"][secret]["file"].startswith("./secrets/"), secret
    assert "TOKEN" not in json.dumps(edge["healthcheck"]), "/readyz needs no token"
    # Prometheus gets the read-only token only.
    assert doc["services"]["prometheus"]["secrets"] == [
        env["EDGE_API_READ_TOKEN_FILE"].removeprefix("/run/secrets/")]
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text(), "never commit the tokens"


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_takes_the_tokens_from_a_secret(path: Path) -> None:
    pod = statefulset(path)["spec"]["template"]["spec"]
    (edge,) = [c for c in pod["containers"] if c["name"] == "edge"]
    _no_token_values(edge["env"], path.name)
    env = env_of(edge)
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_volumes = {n for n, v in volumes.items() if "secret" in v}
    for var in ("EDGE_API_TOKEN_FILE", "EDGE_API_READ_TOKEN_FILE"):
        file = env[var]
        (mount,) = [m for m in edge["volumeMounts"]
                    if file.startswith(m["mountPath"].rstrip("/") + "/")]
        assert mount["name"] in secret_volumes and mount.get("readOnly") is True, (var, mount)
        secret = volumes[mount["name"]]["secret"]
        key = file[len(mount["mountPath"].rstrip("/")) + 1:]
        assert secret["secretName"] == "edge-api" and "/" not in key, (var, key)
        assert secret.get("defaultMode", 0o644) & 0o007 == 0, "not world-readable"
    assert "edge-api" in path.read_text().split("apiVersion")[0], "the header says how"
    # Only the node holds the tokens: no other container sees them.
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c["name"] == "edge":
            continue
        assert not [e for e in c.get("env", []) if "TOKEN" in e["name"]], c["name"]
        assert not [m for m in c.get("volumeMounts", []) if m["name"] in secret_volumes]
