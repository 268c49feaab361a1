"""A workflow run on the caller's thread (``Workers.run_here``) and SIGKILLed mid-run is
resumed by the next boot: its checkpoints (written by the caller's thread) are replayed,
not re-run, and it finishes with the right output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.serialization import decode
from edge.store import Store
from tests.crash.caller_app import STEPS

ROOT = Path(__file__).resolve().parents[2]


def run(data_dir: Path, effects: Path, mode: str,
        kill_after: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tests.crash.caller_app", str(data_dir), str(effects), mode,
         str(kill_after)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kill_after", [1, 3])
def test_a_run_on_the_callers_thread_killed_mid_run_resumes_at_the_next_boot(
        tmp_path: Path, kill_after: int) -> None:
    data_dir, effects = tmp_path / "data", tmp_path / "effects.log"
    first = run(data_dir, effects, "first", kill_after)
    assert first.returncode == -signal.SIGKILL, first.stderr

    store = Store.inspect(data_dir / "edge.db")
    try:
        row = store.get_workflow("order")
        assert row is not None and row.status == "RUNNING"  # as the kill left it
        ops = store.load_ops("order")
        assert [op.seq for op in ops] == list(range(1, kill_after + 1))
        first_pids = {decode(op.output or "{}")["pid"] for op in ops}
        assert {decode(op.output or "{}")["thread"] for op in ops} == {"MainThread"}
    finally:
        store.close()

    second = run(data_dir, effects, "resume", kill_after)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.strip().splitlines()[-1]) == {
        "result": list(range(1, STEPS + 1))}

    store = Store.inspect(data_dir / "edge.db")
    try:
        ops = store.load_ops("order")
        assert [op.seq for op in ops] == list(range(1, STEPS + 1))
        outs = [decode(op.output or "{}") for op in ops]
        # Checkpoints from before the kill were replayed, not re-run.
        assert {o["pid"] for o in outs[:kill_after]} == first_pids
        assert {o["pid"] for o in outs[kill_after:]} != first_pids
    finally:
        store.close()
    keys = [line.split()[0] for line in effects.read_text().splitlines()]
    assert sorted(keys) == sorted(f"order:{s}" for s in range(1, STEPS + 1)), keys  # once each
