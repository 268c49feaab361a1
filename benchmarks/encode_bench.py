"""What the door costs: ``serialization.encode`` (JSON + the checks of edge/limits.py: lone
surrogates, nesting depth, size) against the bare encoder it wraps, measured in the same run.

    .venv/bin/python benchmarks/encode_bench.py            # the table
    .venv/bin/python benchmarks/encode_bench.py --quick    # fewer rounds

Each row is the median of ``--rounds`` timings of a batch (the min and max beside it), per
call, for values shaped like real step outputs: a small dict (no check beyond two substring
scans), a list of 200 dicts (more than 100 brackets: the depth scan runs), text with an
emoji (a ``\\ud`` escape: the surrogate re-encode runs), a 600 KB payload and a value
nested 100 deep (the bound). The ratio columns are encode / bare encoder, of the medians
and of the minima (the least disturbed by other load on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.serialization import _ENCODER, encode  # noqa: E402


def _nested(depth: int) -> Any:
    v: Any = {"leaf": 1}
    for _ in range(depth - 1):
        v = [v]
    return v


VALUES: dict[str, Any] = {
    "small dict": {"order_id": "o-1", "amount": 12.5, "items": ["a", "b"]},
    "200 dicts": [{"id": i, "name": f"n{i}", "tags": ["x", "y"]} for i in range(200)],
    "emoji text": {"msg": "shipped \U0001f4e6 to Zoë", "ok": True},
    "600 KB payload": {"blob": "x" * 600_000, "rows": [[i, str(i)] for i in range(500)]},
    "nested 100 deep": _nested(100),
}


def per_call(fn: Callable[[], object], batch: int, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        out.append((time.perf_counter() - t0) / batch)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    print(f"{'value':<18} {'bytes':>8} {'encode us':>10} {'bare us':>9} {'min..max us':>18} "
          f"{'ratio':>6} {'min ratio':>9}")
    for name, value in VALUES.items():
        text = _ENCODER.encode(value)
        batch = max(1, min(20_000, 2_000_000 // max(len(text), 1)))
        bare = per_call(lambda v=value: _ENCODER.encode(v), batch, rounds)
        door = per_call(lambda v=value: encode(v, "bench"), batch, rounds)
        b, d = statistics.median(bare) * 1e6, statistics.median(door) * 1e6
        span = f"{min(door) * 1e6:.1f}..{max(door) * 1e6:.1f}"
        print(f"{name:<18} {len(text):>8} {d:>10.1f} {b:>9.1f} {span:>18} {d / b:>6.2f} "
              f"{min(door) / min(bare):>9.2f}")


if __name__ == "__main__":
    main()
