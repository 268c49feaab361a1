"""The image's entrypoint as a plain process (no Docker engine here): the Dockerfile's
ENTRYPOINT + CMD with its ENV, its WORKDIR's COPYed files, a loopback listen instead
of 0.0.0.0 and a temporary directory instead of /data. It must boot to /readyz 200,
run a workflow of the example app, pass its own HEALTHCHECK, and stop on SIGTERM
with exit code 0."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ops.conftest import (
    REPO,
    dockerfile_env,
    dockerfile_instructions,
    dockerfile_one,
    exec_form,
    free_port,
    healthcheck_command,
    http_get,
    wait_until,
)

BIN = Path(sys.executable).parent


def image_layout(root: Path) -> tuple[Path, Path]:
    """Lay out what the image's COPY instructions put under its WORKDIR; returns
    (workdir, data dir standing in for /data)."""
    ins = dockerfile_instructions()
    workdir = dockerfile_one(ins, "WORKDIR").args
    assert workdir.startswith("/")
    for copy in (i for i in ins if i.name == "COPY"):
        *sources, dest = copy.args.split()
        if not dest.startswith(workdir):
            continue  # the project itself is pip-installed (here: the dev venv)
        for src in sources:
            target = root / dest.lstrip("/")
            shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__"))
    data = root / "data"
    data.mkdir(mode=0o700)
    return root / workdir.lstrip("/"), data


def image_environment(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EDGE_", "AWS_", "PYTHON"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `edge`, `litestream`, `python`
    # The image pip-installs this tree: run this tree's code, not whatever the venv has.
    env["PYTHONPATH"] = str(REPO)
    for key, value in dockerfile_env(dockerfile_instructions()).items():
        if value == "/data" or value.startswith("/data/"):
            value = str(data) + value[len("/data"):]
        env[key] = value
    assert env["EDGE_APP"] == "examples.shop:app"
    assert env["EDGE_LISTEN"].startswith("0.0.0.0:")
    env["EDGE_LISTEN"] = f"127.0.0.1:{port}"  # loopback in tests
    env["EDGE_DEMO_LATENCY"] = "0.01"  # the example's fake payment API is slow on purpose
    return env


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("replica", [False, True], ids=["no-replica", "file-replica"])
def test_entrypoint_boots_serves_and_stops_on_sigterm(tmp_path: Path, replica: bool) -> None:
    """With a replica, the embedded Litestream runs under setpriv from the image's PATH,
    the SIGTERM flushes it, and it is gone when edge exits."""
    workdir, data = image_layout(tmp_path / "image")
    port = free_port()
    env = image_environment(data, port)
    if replica:
        env["EDGE_REPLICA"] = f"file://{tmp_path / 'replica'}"
    ins = dockerfile_instructions()
    argv = exec_form(dockerfile_one(ins, "ENTRYPOINT").args) + exec_form(
        dockerfile_one(ins, "CMD").args)
    log_path = tmp_path / "edge.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"edge exited {proc.returncode}:\n{log_path.read_text()}"
            return http_get(base + "/readyz", timeout=2)[0] == 200

        wait_until(ready, timeout=30, what="/readyz 200", interval=0.05)

        # The image's HEALTHCHECK, run as Docker would (inside the container's env).
        health = subprocess.run(healthcheck_command(ins), env=env, cwd=workdir,
                                capture_output=True, text=True, timeout=10)
        assert health.returncode == 0, health.stderr

        # The example app (COPYed into the WORKDIR) runs a workflow to the end.
        started = _post(base + "/v1/workflows", {
            "workflow": "fulfil", "id": "o-1",
            "input": {"order_id": "o-1", "cents": 1299, "cooling_off": 0.05}})
        assert started["id"] == "o-1"

        def finished() -> dict[str, object] | None:
            status, body = http_get(base + "/v1/workflows/o-1")
            view = json.loads(body) if status == 200 else {}
            return view if view.get("status") in ("SUCCEEDED", "FAILED") else None

        view = wait_until(finished, timeout=20, what="workflow o-1 to finish", interval=0.05)
        assert view["status"] == "SUCCEEDED", view
        assert (data / "edge.db").exists() and (data / "demo-payments.db").exists()
        status, body = http_get(base + "/metrics")
        assert status == 200 and b"edge_leader 1.0" in body
        if replica:
            children = _processes_mentioning(str(data / "sidecar" / "litestream.yml"))
            assert children, "no litestream child"
            comms = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in children}
            assert comms == {"litestream"}, comms  # setpriv exec'd into litestream

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert rc == 0, text[-3000:]
    # Well inside Docker's default 10 s stop timeout with nothing running.
    assert stop_seconds < 8.0, (stop_seconds, text[-2000:])
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, "EDGE_LOG_FORMAT=json: one JSON object per line"
    assert "Traceback" not in text
    if replica:
        assert not _processes_mentioning(str(data / "sidecar" / "litestream.yml"))
        epoch_files = list((tmp_path / "replica").rglob("*.ltx"))
        assert epoch_files, "nothing replicated"


def _entrypoint_argv() -> list[str]:
    ins = dockerfile_instructions()
    return exec_form(dockerfile_one(ins, "ENTRYPOINT").args) + exec_form(
        dockerfile_one(ins, "CMD").args)


def test_entrypoint_with_its_own_environment_refuses_to_start_without_a_token(
        tmp_path: Path) -> None:
    """The image's own EDGE_LISTEN (0.0.0.0) and no token: exit 2 with a hint, before
    anything binds or touches the data directory."""
    workdir, data = image_layout(tmp_path / "image")
    env = image_environment(data, free_port())
    env["EDGE_LISTEN"] = dockerfile_env(dockerfile_instructions())["EDGE_LISTEN"]
    assert not [k for k in env if "TOKEN" in k]
    proc = subprocess.run(_entrypoint_argv(), cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: --listen 0.0.0.0:"), lines
    assert "without an API token" in lines[0]
    assert lines[1].startswith("hint: ") and "EDGE_API_TOKEN_FILE" in lines[1], lines
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert list(data.iterdir()) == [], "refused before touching /data"


def test_entrypoint_with_mounted_token_files(tmp_path: Path) -> None:
    """As the manifests run it: tokens from files (a mounted Secret); the write token
    writes, the read-only token reads /metrics and is refused writes; the HEALTHCHECK
    needs neither; the tokens are in no process's command line or environment."""
    workdir, data = image_layout(tmp_path / "image")
    port = free_port()
    env = image_environment(data, port)  # loopback listen: tests never bind 0.0.0.0
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    write, read = "w-" + os.urandom(16).hex(), "r-" + os.urandom(16).hex()
    (secrets / "token").write_text(write + "\n")
    (secrets / "read-token").write_text(read + "\n")
    env["EDGE_API_TOKEN_FILE"] = str(secrets / "token")
    env["EDGE_API_READ_TOKEN_FILE"] = str(secrets / "read-token")
    log_path = tmp_path / "edge.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(_entrypoint_argv(), cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"edge exited {proc.returncode}:\n{log_path.read_text()}"
            return http_get(base + "/readyz", timeout=2)[0] == 200

        wait_until(ready, timeout=30, what="/readyz 200", interval=0.05)
        health = subprocess.run(healthcheck_command(dockerfile_instructions()), env=env,
                                cwd=workdir, capture_output=True, text=True, timeout=10)
        assert health.returncode == 0, health.stderr
        assert http_get(base + "/metrics")[0] == 401
        assert http_get(base + "/metrics", token=read)[0] == 200
        body = json.dumps({"workflow": "fulfil", "input": {"order_id": "o-9"}}).encode()
        for token, want in [(None, 401), (read, 403), (write, 201)]:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            req = urllib.request.Request(base + "/v1/workflows", data=body, method="POST",
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == want, (token == read, status)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            except OSError:
                continue
            assert write.encode() not in seen and read.encode() not in seen, entry.name
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
