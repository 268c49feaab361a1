"""The readable table of ``edge fleet``: one line per site, plain columns (the CLI's
``table``), the free-text last column holding the oldest waiting workflow or the
site's error."""

from __future__ import annotations

from typing import Any

from edge.cli.text import duration, safe, table, use_color

__all__ = ["format_fleet"]

_LIVE = ("PENDING", "RUNNING", "SLEEPING", "WAITING")
_LEASE_SGR = {"held": "32", "released": "33", "expired": "1;31"}


def _row(s: dict[str, Any]) -> list[str]:
    lease = s.get("lease") or {}
    rep = s.get("replica") or {}
    counts = s.get("workflows") or {}
    note = ""
    if s.get("error"):
        note = f"error: {s['error']['message']}"
    elif s.get("oldest_waiting"):
        w = s["oldest_waiting"]
        note = (f"oldest waiting {w['id']} for {w.get('waiting_for') or '?'} "
                f"({duration(w.get('age_seconds'))})")
    elif not rep and lease:
        note = "no replicated data yet"
    live = sum(int(counts.get(k, 0)) for k in _LIVE) if counts else None
    return [
        s["site"],
        lease.get("state", "-"),
        str(lease.get("holder", "-")),
        str(lease.get("epoch", "-")),
        duration(rep.get("age_seconds")) if rep else "-",
        "-" if live is None else str(live),
        str(counts.get("SUCCEEDED", "-")) if counts else "-",
        str(counts.get("FAILED", "-")) if counts else "-",
        "-" if s.get("failed_24h") is None else str(s["failed_24h"]),
        note,
    ]


def format_fleet(report: dict[str, Any], *, color: bool | None = None) -> str:
    color = use_color() if color is None else color
    header = ["SITE", "LEASE", "HOLDER", "EPOCH", "CHANGED", "LIVE", "SUCCEEDED", "FAILED",
              "FAILED 24H", "NOTE"]
    rows = [_row(s) for s in report["sites"]]

    def lease_sgr(cell: str) -> str:
        return _LEASE_SGR.get(cell, "")

    def plain(_: str) -> str:
        return ""

    def red_if_positive(cell: str) -> str:
        return "1;31" if cell.isdigit() and int(cell) > 0 else ""

    styles = [plain, lease_sgr, plain, plain, plain, plain, plain, red_if_positive,
              red_if_positive, plain]
    body = table(header, rows, color=color, styles=styles)
    n = len(report["sites"])
    tail = (f"{n} site{'s' if n != 1 else ''} under {safe(report['replica'])}, read in "
            f"{duration(report.get('seconds'))} ({report.get('requests', 0)} requests)")
    return f"{body}\n{tail}" if rows else tail
