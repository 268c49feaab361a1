"""crash_app's node, killed (SIGKILL) mid-resume: right after the boot's first bulk
claim committed (edge/resume.py), before any claimed run was handed to a worker.

usage: python -m tests.crash.boot_crash_app DATA_DIR EFFECTS_FILE N_WORKFLOWS [FIRST]
EDGE_CRASH_CLAIM_BATCH: ids per bulk claim (default 16).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from edge.store import bulk
from tests.crash import crash_app

_real_claim_many = bulk.claim_many


def claim_then_die(store: Any, ids: Any, tokens: Any, now: float, **kw: Any) -> Any:
    got = _real_claim_many(store, ids, tokens, now, **kw)
    if got:  # committed: the claimed rows are RUNNING under this process's tokens
        os.kill(os.getpid(), signal.SIGKILL)
    return got


if __name__ == "__main__":
    bulk.CLAIM_BATCH = int(os.environ.get("EDGE_CRASH_CLAIM_BATCH", "16"))
    bulk.claim_many = claim_then_die  # type: ignore[assignment]
    crash_app.main()
