"""Bit flips in a stopped node's database file, page-aware (for the corruption tests).

Pages are found with SQLite's ``dbstat`` virtual table (read through an immutable
connection: finding the pages writes nothing); a flip XORs one bit in place.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# The tables whose rows and keys carry workflows, and every index over them.
TABLES = ("workflows", "operations", "events", "published")
ALL_TABLES = (*TABLES, "schedules", "edge_meta")


def page_size(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return int(con.execute("PRAGMA page_size").fetchone()[0])
    finally:
        con.close()


def pages(db: Path, tables: tuple[str, ...] = TABLES) -> dict[str, list[int]]:
    """{table or index name: its page numbers} for ``tables`` and their indexes."""
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        names = {r[0]: r[1] for r in con.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")}
        out: dict[str, list[int]] = {}
        for name, pageno in con.execute("SELECT name, pageno FROM dbstat ORDER BY pageno"):
            if names.get(name) in tables:
                out.setdefault(name, []).append(int(pageno))
        return out
    finally:
        con.close()


def flip(db: Path, offset: int, bit: int) -> None:
    """XOR bit ``bit`` of the byte at ``offset`` in place (as a disk would)."""
    fd = os.open(db, os.O_RDWR)
    try:
        b = os.pread(fd, 1, offset)
        os.pwrite(fd, bytes([b[0] ^ (1 << bit)]), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def find_in(db: Path, needle: bytes, name: str) -> int:
    """The file offset of the only occurrence of ``needle`` in the pages of ``name``."""
    size = page_size(db)
    raw = db.read_bytes()
    hits = []
    for p in pages(db, ALL_TABLES).get(name, []):
        start = (p - 1) * size
        at = raw.find(needle, start, start + size)
        while at >= 0:
            hits.append(at)
            at = raw.find(needle, at + 1, start + size)
    assert len(hits) == 1, f"{needle!r} occurs {len(hits)} times in {name}"
    return hits[0]
