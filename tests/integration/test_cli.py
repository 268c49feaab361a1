"""The `edge` CLI as real processes: `edge run` serving, the client commands against it,
bad input (clear one-line errors, documented exit codes, files untouched), signals, and
read-only inspection of a stopped node's data directory."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.client import Client
from edge.errors import EdgeError
from tests.conftest import BOOT_TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).parent / "edge")
APP = "tests.integration.apps.basic_app:app"
SHOW_KEYS = {"id", "workflow", "status", "input", "output", "error", "created_at", "updated_at",
             "wake_at", "waiting_for", "blocked_on", "steps"}
STEP_KEYS = {"seq", "kind", "name", "status", "attempts", "output", "error", "started_at",
             "finished_at", "history", "next_retry_at"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def edge(*args: str, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:  # a hang guard
    return subprocess.run([EDGE, *args], cwd=ROOT, env=env or clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def hashes(data_dir: Path) -> dict[str, str]:
    """Hashes of the database and its WAL (the files inspection must never change)."""
    out = {}
    for name in ("edge.db", "edge.db-wal"):
        p = data_dir / name
        if p.exists():
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_clean_error(res: subprocess.CompletedProcess[str], code: int, mentions: str = "",
                       logs_ok: bool = False) -> None:
    """Exit ``code``; stderr ends with `error: ...` (and `hint: ...`); no traceback.
    ``logs_ok``: `edge run` may log lines before the error."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = res.stderr.strip().splitlines()
    if logs_ok:
        errors = [i for i, ln in enumerate(lines) if ln.startswith("error: ")]
        assert len(errors) == 1, res.stderr
        lines = lines[errors[0]:]
    assert lines and lines[0].startswith("error: "), res.stderr
    assert len(lines) <= 2 and all(ln.startswith(("error: ", "hint: ")) for ln in lines), lines
    if mentions:
        assert mentions in res.stderr, res.stderr


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(EDGE_URL=self.url, **extra)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_node(data_dir: Path, *extra: str, env: dict[str, str] | None = None,
               port: int | None = None) -> Running:
    """``edge run`` on ``data_dir``, ready; ``port`` (default a free one) lets a test start
    a node again where its clients already point."""
    port = port or free_port()
    log = data_dir.parent / f"{data_dir.name}-{port}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [EDGE, "run", "--app", APP, "--data-dir", str(data_dir),
             "--listen", f"127.0.0.1:{port}", *extra],
            cwd=ROOT, env=env or clean_env(), stdout=fh, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    client = Client(url, timeout=2)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"edge run exited {proc.returncode}: {log.read_text()}")
        try:
            return bool(client.ready()["ready"])
        except EdgeError:
            return False

    try:
        wait_until(ready, timeout=BOOT_TIMEOUT, interval=0.05, what="edge run to be ready")
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return Running(proc, url, data_dir, log)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Running]]:
    """start_node for one test; every node it started is killed when the test ends."""
    started: list[Running] = []

    def make(data_dir: Path, *extra: str) -> Running:
        running = start_node(data_dir, *extra)
        started.append(running)
        return running

    yield make
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_node(tmp_path_factory.mktemp("cli") / "data")
    yield running
    running.stop(signal.SIGKILL)


def show_json(node: Running, wid: str) -> dict[str, Any]:
    res = edge("show", wid, "--json", env=node.env())
    assert res.returncode == 0, res.stderr
    view: dict[str, Any] = json.loads(res.stdout)
    return view


def wait_status(node: Running, wid: str, status: str) -> dict[str, Any]:
    return wait_until(lambda: (v := show_json(node, wid))["status"] == status and v,
                      timeout=15, interval=0.05, what=f"{wid} {status}")  # type: ignore[return-value]


# ---- client commands against a running node ---------------------------------------------


def test_start_prints_only_the_id_and_show_has_the_contract_shape(node: Running) -> None:
    res = edge("start", "greet", "--input", '{"name": "bob"}', env=node.env())
    assert res.returncode == 0, res.stderr
    wid = res.stdout.strip()
    assert res.stdout == wid + "\n" and len(wid.split()) == 1
    view = wait_status(node, wid, "SUCCEEDED")
    assert set(view) >= SHOW_KEYS
    assert view["output"] == {"greeting": "hello bob"}
    assert view["input"] == {"args": [], "kwargs": {"name": "bob"}}
    assert view["steps"] and all(set(s) == STEP_KEYS for s in view["steps"])
    text = edge("show", wid, env=node.env())
    assert text.returncode == 0
    for word in ("greet", "SUCCEEDED", "make_greeting", "SEQ", "DURATION"):
        assert word in text.stdout
    # An explicit id, positional input: idempotent on the id.
    first = edge("start", "greet", "--input", '["ann"]', "--id", "cli-ann", env=node.env())
    again = edge("start", "greet", "--input", '["ann"]', "--id", "cli-ann", env=node.env())
    assert first.stdout == again.stdout == "cli-ann\n"
    assert first.returncode == again.returncode == 0


def test_list_status_send_cancel_resume(node: Running) -> None:
    wid = edge("start", "wait_for", "--input", '["w"]', "--id", "cli-wait",
               env=node.env()).stdout.strip()
    view = wait_status(node, wid, "WAITING")
    assert view["waiting_for"]
    assert "waiting for" in edge("show", wid, env=node.env()).stdout

    res = edge("list", env=node.env())
    assert res.returncode == 0
    assert res.stdout.splitlines()[0].split() == ["ID", "WORKFLOW", "STATUS", "UPDATED"]
    assert "cli-wait" in res.stdout
    res = edge("list", "--status", "waiting", "--json", env=node.env())
    page = json.loads(res.stdout)
    assert list(page) == ["workflows", "next_cursor"]  # scripts page on with --cursor
    assert [w["id"] for w in page["workflows"]] == ["cli-wait"]
    assert all("steps" not in w for w in page["workflows"])
    res = edge("list", "--workflow", "greet", "--limit", "1", "--json", env=node.env())
    assert len(json.loads(res.stdout)["workflows"]) == 1

    st = json.loads(edge("status", "--json", env=node.env()).stdout)
    assert st["ready"] is True and st["leader"] is True and st["workflows"]["WAITING"] >= 1
    text = edge("status", env=node.env()).stdout
    assert "leader:      yes" in text and "WAITING" in text

    res = edge("send", wid, "go", "--value", '{"n": 1}', "--dedup", "k1", env=node.env())
    assert res.returncode == 0 and "sent" in res.stdout
    assert wait_status(node, wid, "SUCCEEDED")["output"] == {"name": "w", "value": {"n": 1}}

    wid2 = edge("start", "wait_for", "--input", '{"name": "c"}', env=node.env()).stdout.strip()
    wait_status(node, wid2, "WAITING")
    res = edge("cancel", wid2, env=node.env())
    assert res.returncode == 0 and wid2 in res.stdout
    wait_status(node, wid2, "CANCELLED")
    res = edge("resume", wid2, env=node.env())
    assert res.returncode == 0 and "PENDING" in res.stdout
    wait_status(node, wid2, "WAITING")
    edge("cancel", wid2, env=node.env())


def test_a_failed_workflow_shows_with_exit_0(node: Running) -> None:
    wid = edge("start", "fail", env=node.env()).stdout.strip()
    wait_status(node, wid, "FAILED")
    res = edge("show", wid, env=node.env())
    assert res.returncode == 0 and "ValueError: boom" in res.stdout


def test_per_call_options_never_read_the_environment(node: Running,
                                                     tmp_path: Path) -> None:
    # EDGE_DATA_DIR is a setting of `edge run`: it must not turn `edge list` into a file read,
    # and nothing like EDGE_INPUT / EDGE_ID feeds --input / --id.
    env = node.env(EDGE_DATA_DIR=str(tmp_path / "nowhere"), EDGE_INPUT='{"name": "env"}',
                   EDGE_ID="from-env")
    assert edge("list", env=env).returncode == 0
    res = edge("start", "greet", env=env)
    assert_clean_error(res, 1, "greet")  # no --input: the node refuses, naming the argument
    res = edge("start", "fail", env=env)
    assert res.returncode == 0 and res.stdout.strip() != "from-env"


# ---- bad input: one clear line, the documented exit code, nothing changed -------------------


def foreign_db(d: Path) -> Path:
    d.mkdir()
    conn = sqlite3.connect(d / "edge.db")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('x')")
    conn.commit()
    conn.close()
    return d


def corrupt_db(d: Path) -> Path:
    d.mkdir()
    (d / "edge.db").write_bytes(os.urandom(8192))
    return d


def test_bad_input_is_refused_cleanly(node: Running, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    foreign, corrupt = foreign_db(tmp_path / "foreign"), corrupt_db(tmp_path / "corrupt")
    cases = [
        (["start", "no_such_workflow"], 1, "no_such_workflow"),
        (["start", "greet", "--input", "{not json"], 2, "--input"),
        (["start", "greet", "--input", '"bob"'], 2, "--input"),
        (["start", "greet", "--input", "42"], 2, "--input"),
        (["start", "greet", "--input", '{"nme": "x"}'], 1, "greet"),
        (["show", "no-such-id"], 1, "no-such-id"),
        (["send", "no-such-id", "go"], 1, "no-such-id"),
        (["send", "cli-ann", "go", "--value", "{bad"], 2, "--value"),
        (["cancel", "no-such-id"], 1, "no-such-id"),
        (["resume", "no-such-id"], 1, "no-such-id"),
        (["list", "--status", "bogus"], 2, "bogus"),
        (["status", "--url", dead], 1, "cannot reach"),
        (["start", "greet", "--url", dead, "--input", "[1]"], 1, "cannot reach"),
        (["list", "--url", "not a url"], 2, "--url"),
        (["list", "--data-dir", str(foreign)], 4, "not an edge database"),
        (["show", "x", "--data-dir", str(foreign)], 4, "not an edge database"),
        (["status", "--data-dir", str(corrupt)], 4, ""),
        (["list", "--data-dir", str(corrupt)], 4, ""),
        (["list", "--data-dir", str(tmp_path / "missing")], 4, "no database"),
        (["restore", "--output", str(tmp_path / "r.db")], 2, "--replica"),
        (["restore", "--replica", "bogus://x", "--output", str(tmp_path / "r.db")], 2,
         "--replica"),
    ]
    dirs = [node.data_dir, foreign, corrupt]
    before = [hashes(d) for d in dirs]
    with ThreadPoolExecutor(max_workers=4) as pool:  # independent processes: run 4 at a time
        results = list(pool.map(lambda c: edge(*c[0], env=node.env()), cases))
    for (args, code, mentions), res in zip(cases, results, strict=True):
        assert_clean_error(res, code, mentions)
        assert res.stdout == "", (args, res.stdout)
    assert [hashes(d) for d in dirs] == before
    assert not (foreign / "edge.db-wal").exists() and not (corrupt / "edge.db-wal").exists()
    # typer's own message for a bad flag: exit 2, no traceback.
    res = edge("list", "--limit", "zero", env=node.env())
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_run_refuses_bad_apps_and_settings(tmp_path: Path) -> None:
    d = str(tmp_path / "d")
    for args, mentions in [
        (["--app", "tests.integration.apps.no_such_module:app"], "no module"),
        (["--app", "tests.integration.apps.basic_app:nope"], "nope"),
        (["--app", "tests.integration.apps.basic_app:greet"], "not an edge.App"),
        (["--app", APP, "--workers", "0"], "--workers"),
        (["--app", APP, "--durability", "sometimes"], "--durability"),
        (["--app", APP, "--listen", "nowhere"], "--listen"),
    ]:
        if "--listen" not in args:
            args = [*args, "--listen", f"127.0.0.1:{free_port()}"]
        res = edge("run", *args, "--data-dir", d, timeout=15)
        assert_clean_error(res, 2, mentions, logs_ok=True)
    res = edge("run", "--data-dir", d)
    assert res.returncode == 2 and "Traceback" not in res.stderr  # --app is required
    res = edge("run", "--data-dir", d, "--listen", f"127.0.0.1:{free_port()}",
               env=clean_env(EDGE_APP="tests.integration.apps.basic_app:nope"))
    assert_clean_error(res, 2, "nope", logs_ok=True)  # EDGE_APP is read


def test_second_node_on_the_same_data_dir_exits_3(node: Running) -> None:
    for listen in (f"127.0.0.1:{free_port()}", node.url.removeprefix("http://")):
        # Refused, not queued behind the lock: a second node that waited for it would
        # still be running when the subprocess timeout ends it (TimeoutExpired fails the
        # test). No wall-clock bound beyond that: three Pythons' suites share 2 cores.
        t0 = time.monotonic()
        res = edge("run", "--app", APP, "--data-dir", str(node.data_dir), "--listen", listen,
                   timeout=30)
        took = time.monotonic() - t0
        print(f"second `edge run` (listen {listen}) exited {res.returncode} in {took:.2f} s")
        assert_clean_error(res, 3, "another edge node", logs_ok=True)
    assert node.proc.poll() is None


# ---- signals and read-only inspection of a stopped node ---------------------------------------


def test_sigterm_stops_cleanly_and_the_stopped_dir_inspects_read_only(
        tmp_path: Path, spawn: Callable[..., Running]) -> None:
    run = spawn(tmp_path / "data", "--grace-period", "3")
    client = Client(run.url)
    done = client.start("greet", {"name": "x"}, id="g-1")
    done.result(timeout=10)
    client.start("wait_for", ["y"], id="w-1")
    wait_until(lambda: client.get("w-1")["status"] == "WAITING", what="WAITING")
    t0 = time.monotonic()
    assert run.stop(signal.SIGTERM) == 0, run.log.read_text()
    took = time.monotonic() - t0
    print(f"SIGTERM -> exit 0 in {took:.2f} s")
    # Within the grace period (3 s) plus the teardown, with room for a loaded machine:
    # a stop that waited out a longer timer or a hung flush would be far past it.
    assert took < 3 + 5
    assert "Traceback" not in run.log.read_text()

    before = hashes(run.data_dir)
    res = edge("list", "--data-dir", str(run.data_dir), "--json")
    assert res.returncode == 0, res.stderr
    assert {w["id"]: w["status"] for w in json.loads(res.stdout)["workflows"]} == {
        "g-1": "SUCCEEDED", "w-1": "WAITING"}
    res = edge("show", "g-1", "--data-dir", str(run.data_dir), "--json")
    view = json.loads(res.stdout)
    assert set(view) >= SHOW_KEYS and view["output"] == {"greeting": "hello x"}
    assert edge("show", "w-1", "--data-dir", str(run.data_dir)).returncode == 0
    res = edge("status", "--data-dir", str(run.data_dir), "--json")
    assert json.loads(res.stdout)["workflows"]["WAITING"] == 1
    assert_clean_error(edge("show", "nope", "--data-dir", str(run.data_dir)), 1, "nope")
    assert hashes(run.data_dir) == before

    # The same directory serves again: the waiting workflow was recovered.
    again = spawn(run.data_dir)
    Client(again.url).send("w-1", "go", 1)
    assert Client(again.url).handle("w-1").result(timeout=10) == {"name": "y", "value": 1}
    assert again.stop() == 0


def test_inspection_after_kill_9_leaves_db_and_wal_untouched(
        tmp_path: Path, spawn: Callable[..., Running]) -> None:
    run = spawn(tmp_path / "data")
    client = Client(run.url)
    for i in range(5):
        client.start("greet", [f"k{i}"], id=f"k-{i}").result(timeout=10)
    assert run.stop(signal.SIGKILL) == -signal.SIGKILL
    before = hashes(run.data_dir)
    assert "edge.db-wal" in before  # a killed node leaves its WAL behind
    res = edge("list", "--data-dir", str(run.data_dir), "--json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["workflows"]) == 5
    assert edge("show", "k-0", "--data-dir", str(run.data_dir)).returncode == 0
    assert edge("status", "--data-dir", str(run.data_dir)).returncode == 0
    assert hashes(run.data_dir) == before


def test_sigterm_with_a_step_running_then_a_second_signal_exits_at_once(
        tmp_path: Path, spawn: Callable[..., Running]) -> None:
    run = spawn(tmp_path / "data", "--grace-period", "20")
    client = Client(run.url)
    client.start("slow", [30], id="slow-1")
    wait_until(lambda: client.get("slow-1")["status"] == "RUNNING", what="the slow step to run")
    run.proc.send_signal(signal.SIGTERM)
    # The node now drains: it waits for the running step (up to the 20 s grace period).
    wait_until(lambda: "received: stopping" in run.log.read_text(), what="stop to begin")
    assert run.proc.poll() is None
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=5) == 1
    print(f"second signal -> exit 1 in {time.monotonic() - t0:.2f} s")
    assert "second signal" in run.log.read_text()
