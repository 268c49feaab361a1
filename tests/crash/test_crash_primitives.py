"""Crash tests for the workflow primitives: a real node process (primitives_app.py)
SIGKILLed at random moments while workflows sleep, wait for events, run children, hold
queue slots and cron ticks fire; restarted until it finishes. Afterwards everything
must be as without the kills:
- sleepers woke no earlier than their wake-up time;
- every event was delivered exactly once (no loss, no duplicate from retried sends);
- no child was started twice (exactly the deterministic child ids exist);
- the queue's concurrency (2) was never exceeded, across processes;
- no cron tick started twice (one workflow per tick, its id derived from the tick).
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

from edge.serialization import decode
from edge.store import Store, listing, messages
from tests.crash import primitives_app as pa
from tests.effects import kill_at_random

ROOT = Path(__file__).resolve().parents[2]


def spawn(data_dir: Path, effects: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.primitives_app", str(data_dir), str(effects)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda p: (p[0], p[1]))
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


def test_kill_while_sleeping_waiting_running_children_and_holding_slots(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("EDGE_CRASH_SEED", "7")))
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    kills = 0
    for _ in range(int(os.environ.get("EDGE_PRIMITIVE_KILLS", "5"))):
        proc = spawn(data_dir, effects)
        kills += kill_at_random(proc, rng, 0.5, 1.2)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err
    proc = spawn(data_dir, effects)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert kills >= 3, "the kills should land while the workflows are in flight"

    log: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for line in effects.read_text().splitlines():
        kind, key, at, _pid = line.split()
        log[kind].append((key, float(at)))

    store = Store.inspect(data_dir / "edge.db")
    try:
        # Sleepers woke at the right time: never before t0 + seconds.
        for i in range(pa.SLEEPERS):
            r = results[f"sleeper-{i}"]
            assert r["t1"] >= r["t0"] + pa.SLEEP_SECONDS, r
            assert r["woke"] >= r["t0"] + pa.SLEEP_SECONDS, r
        # Events: each delivered exactly once, in order, despite every boot re-sending.
        for w in range(pa.WAITERS):
            assert results[f"waiter-{w}"] == [f"w{w}-e{k}" for k in range(pa.EVENTS)]
            events = messages.pending_events(store, f"waiter-{w}")
            assert len(events) == pa.EVENTS and all(e.consumed_seq for e in events)
        # Children: exactly the deterministic ids, each once.
        for p in range(pa.PARENTS):
            assert results[f"parent-{p}"] == list(range(pa.CHILDREN))
            kids, _ = listing.list_workflows(store, parent_id=f"parent-{p}", limit=100)
            assert sorted(k.id for k in kids) == [f"parent-{p}:{s}"
                                                  for s in range(1, pa.CHILDREN + 1)]
            assert all(k.status == "SUCCEEDED" for k in kids)
        # The queue: at most CONCURRENCY workflows between first enter and last leave.
        spans: dict[str, list[float]] = {}
        for key, at in log["enter"]:
            span = spans.setdefault(key, [at, at])
            span[0] = min(span[0], at)
        for key, at in log["leave"]:
            spans[key][1] = max(spans[key][1], at)
        assert len(spans) == pa.SLOTTED
        assert max_overlap([(a, b) for a, b in spans.values()]) <= pa.CONCURRENCY
        assert all(results[f"slotted-{i}"] == i for i in range(pa.SLOTTED))
        # Cron: one workflow per tick, its id derived from the tick it ran.
        ticks, _ = listing.list_workflows(store, workflow="ticker", limit=1000)
        inputs = [decode(t.input)["args"][0] for t in ticks]
        assert len(inputs) == len(set(inputs)) > 0
        assert all(t.id == f"sched:tick:{arg}" for t, arg in zip(ticks, inputs, strict=True))
    finally:
        store.close()
    print(f"\n[crash] primitives: kills={kills} ticks={len(inputs)} "
          f"queue max overlap={max_overlap([(a, b) for a, b in spans.values()])}")
