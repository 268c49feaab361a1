"""Crash tests: a real node process SIGKILLed at chosen points and at random times,
restarted on the same data directory until every workflow finishes.

What must hold after the last restart (DESIGN.md section 3, rules 2, 3, 5):
- every workflow SUCCEEDED with the right output, none lost;
- deduplicated side effects == steps exactly (every key f"{wid}:{seq}" once at least);
- no checkpointed step body ran again: for every key, the last process that ran the
  body is the one whose output was checkpointed (outputs carry the pid);
- a body re-ran only across a kill that landed between its effect and its checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from edge.serialization import decode
from edge.store import Store
from tests.crash.crash_app import STEPS, expected_total
from tests.effects import kill_at_random

ROOT = Path(__file__).resolve().parents[2]
N_WORKFLOWS = 6


def spawn(data_dir: Path, effects: Path, points: str = "", n: int = N_WORKFLOWS,
          workers: int = 4, first: int = 0) -> subprocess.Popen[str]:
    env = dict(os.environ, EDGE_CRASH_POINTS=points, PYTHONPATH=str(ROOT),
               EDGE_CRASH_WORKERS=str(workers))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.crash_app", str(data_dir), str(effects), str(n),
         str(first)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_to_completion(data_dir: Path, effects: Path, points: str = "",
                      n: int = N_WORKFLOWS, max_runs: int = 200, workers: int = 4,
                      first: int = 0) -> tuple[int, dict]:
    """Restart the node until a run exits 0; returns (kills seen, final summary)."""
    kills = 0
    for _ in range(max_runs):
        proc = spawn(data_dir, effects, points, n, workers, first)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            return kills, json.loads(out.strip().splitlines()[-1])
        assert proc.returncode == -signal.SIGKILL, f"node crashed unexpectedly:\n{err}"
        kills += 1
    raise AssertionError("the node never finished")


def check_invariants(data_dir: Path, effects: Path, n: int = N_WORKFLOWS) -> dict[str, int]:
    store = Store.inspect(data_dir / "edge.db")
    try:
        lines: dict[str, list[int]] = defaultdict(list)
        for line in effects.read_text().splitlines():
            key, pid = line.split()
            lines[key].append(int(pid))
        expected_keys = {f"wf-{i}:{s}" for i in range(n) for s in range(1, STEPS + 1)}
        assert set(lines) == expected_keys, "deduplicated effects != steps"
        for i in range(n):
            wf = store.get_workflow(f"wf-{i}")
            assert wf is not None and wf.status == "SUCCEEDED", f"wf-{i} is {wf and wf.status}"
            assert decode(wf.output or "null") == {"n": i, "total": expected_total(i)}
            ops = store.load_ops(f"wf-{i}")
            assert [op.seq for op in ops] == list(range(1, STEPS + 1))
            for op in ops:
                key = f"wf-{i}:{op.seq}"
                pid = decode(op.output or "{}")["pid"]
                assert lines[key][-1] == pid, f"{key}: body ran again after its checkpoint"
        reruns = sum(len(v) - 1 for v in lines.values())
        return {"reruns": reruns, "keys": len(lines)}
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["before_body", "after_effect", "after_checkpoint"])
def test_kill_at_chosen_points(tmp_path: Path, kind: str) -> None:
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    points = [f"{kind}:wf-{w}:{s}" for w in (0, 3) for s in (1, 3, 5)]
    # One worker: exactly one body is in flight when the point fires, so the
    # number of re-run bodies is exact.
    kills, _ = run_to_completion(data_dir, effects, ",".join(points), workers=1)
    assert kills == len(points)
    stats = check_invariants(data_dir, effects)
    # A body re-runs only when the kill fell between its effect and its checkpoint.
    assert stats["reruns"] == (len(points) if kind == "after_effect" else 0)
    print(f"\n[crash] {kind}: kills={kills} reruns={stats['reruns']} lost=0")


def test_kill_at_random_times(tmp_path: Path) -> None:
    """Kill at random moments; each batch of workflows that completes makes room for
    a new batch, until the kill budget is spent."""
    rng = random.Random(int(os.environ.get("EDGE_CRASH_SEED", "20261121")))
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    target_kills = int(os.environ.get("EDGE_RANDOM_KILLS", "85"))
    batch, per_batch = 0, 12
    kills = runs = 0
    while kills < target_kills:
        proc = spawn(data_dir, effects, n=per_batch, first=batch * per_batch)
        runs += 1
        kills += kill_at_random(proc, rng, 0.15, 0.45)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            batch += 1  # everything so far finished: start fresh workflows
        else:
            assert proc.returncode == -signal.SIGKILL, err
    final_kills, _ = run_to_completion(data_dir, effects, n=per_batch,
                                       first=batch * per_batch)
    assert final_kills == 0
    total = (batch + 1) * per_batch
    stats = check_invariants(data_dir, effects, n=total)
    # Each kill can interrupt at most one body per worker thread (4) mid-effect.
    assert stats["reruns"] <= kills * 4
    print(f"\n[crash] random: runs={runs} kills={kills} workflows={total} "
          f"steps={total * STEPS} reruns={stats['reruns']} lost=0")
