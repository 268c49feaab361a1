"""A real node on a real, small tmpfs that fills up while workflows run.

Fill the volume while acknowledged workflows checkpoint, keep starting workflows while it
is full (each start is acknowledged with 201 or refused with 503 disk_full/io_error and a
hint naming the data directory; never a 500), then free the space: every acknowledged
workflow finishes, without a restart. Prints acknowledged / lost / seconds to recover.
Needs root to mount a tmpfs (skipped, with that reason, where mounting is refused).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BOOT_TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).parent / "edge")
APP = "tests.integration.apps.disk_app:app"
VOLUME = "8m"
STEPS = 12  # checkpoints of ~8 KB each per workflow


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "vol"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUME},mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is refused here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def fill_volume(path: Path) -> int:
    """Write a file until the volume is full; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    written = 0
    block = b"\0" * 65536
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return written
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


def test_a_full_disk_loses_nothing_acknowledged_and_recovers_without_a_restart(
        volume: Path, tmp_path: Path) -> None:
    port = int(_free_port())
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "node.log"  # outside the volume: the log must not fill it
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [EDGE, "run", "--app", APP, "--data-dir", str(volume), "--listen",
             f"127.0.0.1:{port}", "--workers", "8"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"edge run exited: {log.read_text()}")
            return call(f"{url}/readyz")[0] == 200 if _up(url) else False

        wait_until(ready, timeout=BOOT_TIMEOUT, interval=0.05, what="the node to be ready")
        acknowledged: list[str] = []
        refused: dict[str, int] = {}

        def start(i: int) -> None:
            status, body = call(f"{url}/v1/workflows", "POST",
                                {"workflow": "fill", "id": f"w{i}", "input": {"n": STEPS}})
            if status == 201:
                acknowledged.append(f"w{i}")
                return
            assert status == 503, (status, body)  # never a 500: the fault is named
            assert body["error"]["code"] in ("disk_full", "io_error"), body
            assert str(volume) in body["error"]["hint"], body
            refused[body["error"]["code"]] = refused.get(body["error"]["code"], 0) + 1

        for i in range(24):
            start(i)
        filler = volume / "filler"
        fill_volume(filler)
        for i in range(24, 60):
            start(i)

        def failing() -> bool:
            status, body = call(f"{url}/readyz")
            return status == 503 and body.get("code") in ("disk_full", "io_error")

        wait_until(failing, timeout=20, what="/readyz to report the full disk")
        status, metrics = call(f"{url}/metrics")
        errors = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("edge_write_errors_total{"))
        assert errors > 0, [m for m in metrics.splitlines() if "write_errors" in m]

        def stuck() -> list[str]:
            out = []
            for wid in acknowledged:
                status, body = call(f"{url}/v1/workflows/{wid}")
                if status != 200 or body["status"] != "SUCCEEDED":
                    out.append(wid)
            return out

        assert stuck(), "nothing was stuck: the volume filled too late to test anything"
        filler.unlink()
        freed = time.monotonic()
        wait_until(lambda: not stuck(), timeout=60, interval=0.1,
                   what="every acknowledged workflow to finish after space came back")
        recover = time.monotonic() - freed
        wait_until(lambda: call(f"{url}/readyz")[0] == 200, timeout=20,
                   what="/readyz to be 200 again")
        assert proc.poll() is None, "the node restarted or exited"
        lost = [wid for wid in acknowledged
                if call(f"{url}/v1/workflows/{wid}")[1].get("status") != "SUCCEEDED"]
        print(f"\ndisk full: {len(acknowledged)} acknowledged, {sum(refused.values())} refused "
              f"{refused}, {errors:.0f} write errors, {len(lost)} lost, "
              f"{recover:.2f} s to recover after space returned")
        assert not lost
        text = log.read_text()
        assert "Traceback" not in text and "worker crashed" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(url: str) -> bool:
    try:
        call(f"{url}/healthz")
        return True
    except OSError:
        return False
