"""A fake payment provider that deduplicates by idempotency key, like Stripe does.

It keeps its ledger in its own SQLite file (``EDGE_DEMO_PAYMENTS``, default
``demo-payments.db``), apart from edge's database, so a kill -9 of the node
cannot roll it back: that is the situation idempotency keys exist for.

    python -m examples.payments        # print the ledger: requests vs charges
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time


def _db() -> sqlite3.Connection:
    path = os.environ.get("EDGE_DEMO_PAYMENTS", "demo-payments.db")
    # Created 0600 before SQLite opens it (its journal takes the same mode): the image
    # runs with umask 0022 and the ledger sits in the node's private data directory.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, timeout=10)
    conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, order_id TEXT, "
                 "cents INTEGER, requests INTEGER, charged_at REAL)")
    return conn


def record(key: str, order_id: str, cents: int) -> dict[str, object]:
    """Move the money once per key; a retried request with the same key gets the first charge."""
    with _db() as conn:
        conn.execute("INSERT INTO charges VALUES (?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE "
                     "SET requests = requests + 1", (key, order_id, cents, time.time()))
        row = conn.execute("SELECT key, cents, requests FROM charges WHERE key = ?",
                           (key,)).fetchone()
    return {"charge_id": f"ch_{row[0]}", "cents": row[1], "requests_seen": row[2]}


def latency() -> float:
    return float(os.environ.get("EDGE_DEMO_LATENCY", "0.5"))


def charge(key: str, order_id: str, cents: int) -> dict[str, object]:
    """Charge once per key (``record``), then answer slowly."""
    receipt = record(key, order_id, cents)
    # The money moved; the answer is slow. A node killed now never hears back, and
    # its retry (same key) must not charge again.
    time.sleep(latency())
    return receipt


def ledger() -> list[dict[str, object]]:
    """Every charge, oldest first: key, order_id, cents, requests (how often it was asked)."""
    with _db() as conn:
        rows = conn.execute("SELECT key, order_id, cents, requests FROM charges "
                            "ORDER BY charged_at")
        return [{"key": k, "order_id": o, "cents": c, "requests": r} for k, o, c, r in rows]


def main() -> None:
    print(f"{'IDEMPOTENCY KEY':<24} {'ORDER':<10} {'CENTS':>6} {'REQUESTS':>8}")
    for row in ledger():
        print(f"{row['key']!s:<24} {row['order_id']!s:<10} {row['cents']!s:>6} "
              f"{row['requests']!s:>8}")


if __name__ == "__main__":
    main()
