"""What the crash tests share, both sides of the kill.

In the node process (crash_app.py, async_crash_app.py): ``KillPoints`` fires
``EDGE_CRASH_POINTS`` ("kind:workflow_id:step,...") once each (a marker file next to the
data dir remembers a point across restarts) and logs each side effect as
"<idempotency key> <pid>".

In the test: ``spawn`` a node app module, ``run_to_completion`` restarts it until a run
exits 0, ``kill_randomly`` spends a kill budget on batches of workflows, and
``check_invariants`` asserts what a crash may never break: every workflow SUCCEEDED with
the right output, deduplicated effects == steps, and no checkpointed body ran again (the
last process that ran a body is the one whose output was checkpointed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.serialization import decode
from edge.store import OpRow, Store
from tests.effects import append_line, kill_at_random

ROOT = Path(__file__).resolve().parents[2]


class KillPoints:
    """The node side: argv is the app's (DATA_DIR EFFECTS_FILE ...)."""

    def __init__(self, argv: list[str], environ: dict[str, str]) -> None:
        self.points = {p for p in environ.get("EDGE_CRASH_POINTS", "").split(",") if p}
        self.markers = Path(argv[1]).parent / "markers" if len(argv) > 1 else Path(".")
        self.effects = argv[2] if len(argv) > 2 else os.devnull
        self.work_seconds = float(environ.get("EDGE_CRASH_WORK", "0.01"))

    def prepare(self) -> None:
        self.markers.mkdir(exist_ok=True)

    def maybe_die(self, kind: str, wid: str, step: int) -> None:
        point = f"{kind}:{wid}:{step}"
        if point not in self.points:
            return
        marker = self.markers / point.replace(":", "_")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        # The marker must be durable before the kill, or the point fires again forever.
        os.fsync(fd)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def effect(self, key: str) -> None:
        append_line(self.effects, f"{key} {os.getpid()}")


def spawn(module: str, data_dir: Path, effects: Path, points: str = "", n: int = 4,
          first: int = 0, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = dict(os.environ, EDGE_CRASH_POINTS=points, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", module, str(data_dir), str(effects), str(n), str(first)],
        cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_to_completion(module: str, data_dir: Path, effects: Path, points: str = "",
                      n: int = 4, first: int = 0, env: dict[str, str] | None = None,
                      max_runs: int = 200) -> tuple[int, dict[str, Any]]:
    """Restart the node until a run exits 0; returns (kills seen, final summary)."""
    kills = 0
    for _ in range(max_runs):
        proc = spawn(module, data_dir, effects, points, n, first, env)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return kills, summary
        assert proc.returncode == -signal.SIGKILL, f"node crashed unexpectedly:\n{err}"
        kills += 1
    raise AssertionError("the node never finished")


def kill_randomly(module: str, data_dir: Path, effects: Path, rng: random.Random,
                  target_kills: int, per_batch: int, window: tuple[float, float],
                  env: dict[str, str] | None = None) -> dict[str, int]:
    """Kill at random moments; each batch of workflows that completes makes room for a
    new batch, until the kill budget is spent; then run the last batch to the end.
    Returns {"runs", "kills", "workflows"}."""
    batch = kills = runs = 0
    while kills < target_kills:
        proc = spawn(module, data_dir, effects, n=per_batch, first=batch * per_batch, env=env)
        runs += 1
        kills += kill_at_random(proc, rng, *window)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            batch += 1  # everything so far finished: start fresh workflows
        else:
            assert proc.returncode == -signal.SIGKILL, err
    final_kills, _ = run_to_completion(module, data_dir, effects, n=per_batch,
                                       first=batch * per_batch, env=env)
    assert final_kills == 0
    return {"runs": runs, "kills": kills, "workflows": (batch + 1) * per_batch}


def read_effects(effects: Path) -> dict[str, list[int]]:
    lines: dict[str, list[int]] = defaultdict(list)
    for line in effects.read_text().splitlines():
        key, pid = line.split()
        lines[key].append(int(pid))
    return lines


def check_invariants(data_dir: Path, effects: Path, n: int, steps: int,
                     expected_total: Callable[[int], int],
                     check_ops: Callable[[str, list[OpRow]], None] | None = None,
                     ) -> dict[str, int]:
    """Assert the crash invariants over workflows wf-0..wf-(n-1) of ``steps`` steps each;
    ``check_ops(wid, ops)`` adds an app's own checks. Returns {"reruns", "keys"}."""
    store = Store.inspect(data_dir / "edge.db")
    try:
        lines = read_effects(effects)
        expected_keys = {f"wf-{i}:{s}" for i in range(n) for s in range(1, steps + 1)}
        assert set(lines) == expected_keys, "deduplicated effects != steps"
        for i in range(n):
            wid = f"wf-{i}"
            wf = store.get_workflow(wid)
            assert wf is not None and wf.status == "SUCCEEDED", f"{wid} is {wf and wf.status}"
            assert decode(wf.output or "null") == {"n": i, "total": expected_total(i)}
            ops = store.load_ops(wid)
            assert [op.seq for op in ops] == list(range(1, steps + 1))
            for op in ops:
                key = f"{wid}:{op.seq}"
                pid = decode(op.output or "{}")["pid"]
                assert lines[key][-1] == pid, f"{key}: body ran again after its checkpoint"
            if check_ops is not None:
                check_ops(wid, ops)
        reruns = sum(len(v) - 1 for v in lines.values())
        return {"reruns": reruns, "keys": len(lines)}
    finally:
        store.close()
