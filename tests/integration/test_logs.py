"""Logs: one line per event; --log-format json makes every line a JSON object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.dr.conftest import free_port, poll

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(Path(sys.executable).with_name("edge"))


def test_json_logs_are_one_object_per_line(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [EDGE, "run", "--app", "tests.dr.site_app:app", "--data-dir", str(tmp_path / "d"),
         "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        poll(ready, 20, "ready")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert time.monotonic() - t0 < 10
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) >= 3  # warning (no replica), ready, stopped at least
    for ln in lines:
        rec = json.loads(ln)
        assert {"ts", "level", "logger", "msg"} <= rec.keys()
    msgs = " ".join(json.loads(ln)["msg"] for ln in lines)
    assert "ready" in msgs and "stopped" in msgs and "no --replica" in msgs
