"""Crash tests with async workflows (tests/crash/async_crash_app.py): a real node process
SIGKILLed at chosen points (before a step body, after its effect before its checkpoint,
after its checkpoint, inside a gather with some members checkpointed and others not) and
at random times, restarted on the same data directory until every workflow finishes.

What must hold after the last restart (as in test_crash.py):
- every workflow SUCCEEDED with the right output, none lost;
- deduplicated side effects == steps exactly (every key f"{wid}:{seq}" at least once);
- no checkpointed step body ran again: for every key, the last process that ran the
  body is the one whose output was checkpointed (outputs carry the pid);
- a body re-ran only across a kill that landed between its effect and its checkpoint;
- the gather's checkpoints finished in the order 5, 3, 4 (not program order) and replay
  took them back by seq.
Kill figures are printed as "[crash-async] ..." lines (pytest -s shows them).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from edge.store import OpRow
from tests.crash import harness
from tests.crash.async_crash_app import STEPS, expected_total

MODULE = "tests.crash.async_crash_app"
N_WORKFLOWS = 4


def run_to_completion(data_dir: Path, effects: Path, points: str = "", n: int = N_WORKFLOWS,
                      sequential: bool = False) -> tuple[int, dict]:
    return harness.run_to_completion(
        MODULE, data_dir, effects, points, n, max_runs=100,
        env={"EDGE_CRASH_SEQUENTIAL": "1" if sequential else "0"})


def _gather_checks(wid: str, ops: list[OpRow]) -> None:
    assert [(op.kind, op.name.rsplit(".", 1)[-1]) for op in ops] == [
        ("step", "swork" if s == 6 else "awork") for s in range(1, STEPS + 1)]
    done = {op.seq: op.finished_at for op in ops}
    assert done[5] <= done[3] <= done[4], f"{wid}: gather finished out of its order"


def check_invariants(data_dir: Path, effects: Path, n: int = N_WORKFLOWS) -> dict[str, int]:
    return harness.check_invariants(data_dir, effects, n, STEPS, expected_total,
                                    _gather_checks)


# Where each kind of point is placed: step 1 (sequential), a gather member, step 6 (a
# sync step in a thread). In the gather, before_body of 4 finds 5 and 3 checkpointed and
# 4 not started; after_effect of 3 finds 5 checkpointed, 3's effect done, 4 waiting;
# after_checkpoint of 5 is after the whole gather returned.
CHOSEN = {"before_body": (1, 4, 6), "after_effect": (1, 3, 6), "after_checkpoint": (1, 5, 6)}


@pytest.mark.parametrize("kind", sorted(CHOSEN))
def test_kill_at_chosen_points(tmp_path: Path, kind: str) -> None:
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    points = [f"{kind}:wf-{w}:{s}" for w in (0, 2) for s in CHOSEN[kind]]
    # One workflow at a time, and a gather's effectful parts one after another: exactly
    # one body is in flight when a point fires, so the number of re-run bodies is exact.
    kills, summary = run_to_completion(data_dir, effects, ",".join(points), sequential=True)
    assert kills == len(points)
    stats = check_invariants(data_dir, effects)
    lines = harness.read_effects(effects)
    for point in points:
        _, wid, step = point.split(":")
        ran = len(lines[f"{wid}:{step}"])
        # Only a kill between a body's effect and its checkpoint makes that body run twice.
        assert ran == (2 if kind == "after_effect" else 1), (point, ran)
    assert stats["reruns"] == (len(points) if kind == "after_effect" else 0)
    assert summary["results"][0] == {"n": 0, "total": expected_total(0)}
    print(f"\n[crash-async] {kind}: kills={kills} reruns={stats['reruns']} lost=0")


def test_kill_at_random_times(tmp_path: Path) -> None:
    """Kill at random moments with a batch of workflows all in flight (gathers running
    concurrently across workflows); each batch that completes makes room for a new one,
    until the kill budget is spent."""
    rng = random.Random(int(os.environ.get("EDGE_CRASH_SEED", "20261201")))
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    target_kills = int(os.environ.get("EDGE_ASYNC_RANDOM_KILLS", "50"))
    per_batch = 20
    res = harness.kill_randomly(MODULE, data_dir, effects, rng, target_kills, per_batch,
                                window=(0.15, 0.5), env={"EDGE_CRASH_SEQUENTIAL": "0"})
    runs, kills, total = res["runs"], res["kills"], res["workflows"]
    stats = check_invariants(data_dir, effects, n=total)
    # A workflow's effectful sections run one at a time (the gather is ordered), so a
    # kill interrupts at most one body per workflow in flight.
    assert stats["reruns"] <= kills * per_batch
    print(f"\n[crash-async] random: runs={runs} kills={kills} workflows={total} "
          f"steps={total * STEPS} reruns={stats['reruns']} lost=0")
