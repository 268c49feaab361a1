"""Harness for disaster-recovery tests: real `edge run` processes, real litestream,
a real S3 server (moto) on loopback, kills with SIGKILL, effects counted per key."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.conftest import aws_env, bucket, moto_endpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).with_name("edge"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(pred: Any, timeout: float = 20.0, what: str = "condition", interval: float = 0.02
         ) -> Any:
    return wait_until(pred, timeout, what, interval)


class SiteNode:
    """One `edge run` process of the site app."""

    def __init__(self, tmp: Path, name: str, data_dir: Path, replica: str | None, effects: Path,
                 extra: list[str] | None = None, env: dict[str, str] | None = None,
                 umask: int = -1) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}-{self.port}.log"
        where = ["--replica", replica] if replica is not None else []
        args = [EDGE, "run", "--app", "tests.dr.site_app:app", "--data-dir", str(data_dir),
                *where, "--listen", f"127.0.0.1:{self.port}", "--workers", "4",
                "--sync-interval", "0.2", "--lease-ttl", "3", "--lease-renew", "1",
                "--grace-period", "5", *(extra or [])]
        full_env = dict(os.environ, EDGE_TEST_EFFECTS=str(effects), PYTHONPATH=str(ROOT),
                        **(env or {}))
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in wait()
        self.started = time.monotonic()
        # Its own session: killpg reaches the node and its litestream child together.
        self.proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     umask=umask)  # -1: inherit ours

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                body = r.read()
                return r.status, json.loads(body) if path != "/metrics" else body.decode()
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from process start to ready (the RTO)."""
        def check() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.text()}")
            return self.ready()
        poll(check, timeout, f"{self.name} ready")
        return time.monotonic() - self.started

    def start(self, workflow: str, n: int, wid: str) -> None:
        code, body = self.post("/v1/workflows", {"workflow": workflow, "input": [n], "id": wid})
        assert code in (200, 201), body

    def show(self, wid: str) -> dict[str, Any]:
        code, body = self.get(f"/v1/workflows/{wid}")
        assert code == 200, body
        return body  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")[1]  # type: ignore[no-any-return]

    def wait_all(self, ids: list[str], timeout: float = 60.0) -> None:
        poll(lambda: all(self.show(w)["status"] == "SUCCEEDED" for w in ids), timeout,
             f"{len(ids)} workflows SUCCEEDED on {self.name}", interval=0.1)

    def litestream_pid(self) -> int | None:
        rep = (self.status() or {}).get("replication") or {}
        return (rep.get("sidecar") or {}).get("pid")

    def kill_group(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def term(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> int:
        rc = self.proc.wait(timeout)
        self.log.close()
        return rc

    def text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        if not self.log.closed:
            self.log.close()


class Effects:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            key, pid = line.split()
            out.append((key, int(pid)))
        return out

    def counts(self) -> Counter[str]:
        return Counter(k for k, _ in self.lines())


@pytest.fixture
def site(tmp_path: Path, bucket: str, moto_endpoint: str  # noqa: F811
         ) -> Iterator[Any]:
    nodes: list[SiteNode] = []
    replica = f"s3://{bucket}/site?endpoint={moto_endpoint}"
    effects = tmp_path / "effects.log"

    class Site:
        def __init__(self) -> None:
            self.replica = replica
            self.effects = Effects(effects)
            self.tmp = tmp_path
            self.bucket = bucket
            self.endpoint = moto_endpoint

        def node(self, name: str, data_dir: Path | None = None, replica: str | None = None,
                 extra: list[str] | None = None, umask: int = -1) -> SiteNode:
            """``replica=""`` runs the node without one."""
            n = SiteNode(tmp_path, name, data_dir or tmp_path / name,
                         (replica or None) if replica is not None else self.replica,
                         effects, extra, umask=umask)
            nodes.append(n)
            return n

    yield Site()
    for n in nodes:
        n.stop_quietly()
