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

import os
import random
from pathlib import Path

import pytest

from tests.crash import harness
from tests.crash.crash_app import STEPS, expected_total

MODULE = "tests.crash.crash_app"
N_WORKFLOWS = 6


def run_to_completion(data_dir: Path, effects: Path, points: str = "", n: int = N_WORKFLOWS,
                      workers: int = 4) -> tuple[int, dict]:
    return harness.run_to_completion(MODULE, data_dir, effects, points, n,
                                     env={"EDGE_CRASH_WORKERS": str(workers)})


def check_invariants(data_dir: Path, effects: Path, n: int = N_WORKFLOWS) -> dict[str, int]:
    return harness.check_invariants(data_dir, effects, n, STEPS, expected_total)


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
    res = harness.kill_randomly(MODULE, data_dir, effects, rng, target_kills, per_batch=12,
                                window=(0.15, 0.45), env={"EDGE_CRASH_WORKERS": "4"})
    runs, kills, total = res["runs"], res["kills"], res["workflows"]
    stats = check_invariants(data_dir, effects, n=total)
    # Each kill can interrupt at most one body per worker thread (4) mid-effect.
    assert stats["reruns"] <= kills * 4
    print(f"\n[crash] random: runs={runs} kills={kills} workflows={total} "
          f"steps={total * STEPS} reruns={stats['reruns']} lost=0")
