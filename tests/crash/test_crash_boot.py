"""A node SIGKILLed in the middle of resuming at boot (after its first bulk claim
committed, before the claimed runs ran) loses nothing: the next boot's recovery resets
the claimed rows and every workflow finishes, with no checkpointed step run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.store import Store, listing
from tests.crash import harness
from tests.crash.harness import ROOT
from tests.crash.test_crash import check_invariants, run_to_completion

N = 120  # 5 steps of 10 ms each on 4 workers: ~1.5 s to finish them all


def effects_seen(effects: Path) -> int:
    try:
        return len(effects.read_text().splitlines())
    except FileNotFoundError:
        return 0


def running_tokens(data_dir: Path) -> dict[str, str]:
    store = Store.inspect(data_dir / "edge.db")
    try:
        rows, _ = listing.list_workflows(store, status="RUNNING", limit=1000)
        return {r.id: str(r.run_token) for r in rows}
    finally:
        store.close()


def test_a_kill_mid_resume_at_boot_loses_nothing(tmp_path: Path) -> None:
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    # 1. A first node is killed while it runs the workflows: they are in flight.
    proc = harness.spawn("tests.crash.crash_app", data_dir, effects, n=N,
                         env={"EDGE_CRASH_WORKERS": "4"})
    deadline = time.monotonic() + 60
    while effects_seen(effects) < 20:  # steps are running: workflows are in flight
        assert proc.poll() is None and time.monotonic() < deadline, "no step ran"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = running_tokens(data_dir)
    assert len(before) >= 2, "no workflow was in flight at the kill"
    # 2. The next node dies right after its first bulk claim committed.
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGE_CRASH_CLAIM_BATCH="16")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.boot_crash_app", str(data_dir), str(effects),
         str(N)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    after = running_tokens(data_dir)
    reclaimed = [w for w in after if w in before and after[w] != before[w]]
    assert reclaimed, "the kill did not land after a bulk claim"
    # 3. The boots after it finish everything; the invariants of the crash tests hold.
    kills, _ = run_to_completion(data_dir, effects, n=N)
    assert kills == 0
    check_invariants(data_dir, effects, n=N)
