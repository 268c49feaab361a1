"""The terminal text primitives of the `edge` CLI: colour, escaping, cell widths,
plain-column tables, times and durations, JSON output.

Invariants:
- text output is plain columns (no box drawing): it survives pipes, logs and
  ``grep``; colour only on a terminal, and then the same characters;
- user data reaches the terminal with control and bidi-override characters
  escaped (``safe``); ``dumps`` never fails on a lone surrogate;
- pure functions of their arguments and the environment (NO_COLOR, FORCE_COLOR,
  TERM, the terminal's size): no I/O, no edge imports, so edge/fleet/text.py and
  the CLI's renderers (render.py) share them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# ---- text output -------------------------------------------------------------------
#
# Tables are plain columns separated by two spaces. On a terminal (stdout a TTY,
# NO_COLOR unset, TERM not "dumb"; FORCE_COLOR forces it) statuses, headers and
# errors are coloured and the free-text last column is clipped to the terminal's
# width; the characters are otherwise the same, so a pipe gets exactly what the
# terminal shows minus the escape codes. User data (ids, names, errors) never
# carries a control character to the terminal: they are shown escaped.

STATUS_SGR = {"PENDING": "", "RUNNING": "36", "SLEEPING": "35", "WAITING": "33",
               "SUCCEEDED": "32", "FAILED": "1;31", "CANCELLED": "2"}
BOLD, DIM, RED, GREEN, YELLOW = "1", "2", "31", "32", "33"
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_SEP = "  "


def use_color(stream: Any = None) -> bool:
    """Colour for ``stream`` (stdout by default): a TTY, unless NO_COLOR or TERM=dumb."""
    env = os.environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    if env.get("TERM") == "dumb":
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def term_width(color: bool) -> int | None:
    """The terminal's width when writing to one (``color`` stands for "a terminal")."""
    if not color:
        return None
    return shutil.get_terminal_size((100, 24)).columns


def safe(text: Any) -> str:
    """``text`` with control and bidi-override characters escaped, newlines as spaces."""
    s = str(text)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        code = ord(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif code in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def text_width(text: str) -> int:
    """Terminal cells of ``text`` (wide East Asian characters take two, combining none)."""
    if text.isascii():
        return len(text)
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def cut(text: str, cells: int) -> str:
    """``text`` clipped to ``cells`` terminal cells, ending in ``...`` when cut."""
    if text_width(text) <= cells:
        return text
    if cells <= 3:
        return "." * max(cells, 0)
    out, used = [], 0
    for ch in text:
        w = text_width(ch)
        if used + w > cells - 3:
            break
        out.append(ch)
        used += w
    return "".join(out) + "..."


def paint(text: str, sgr: str, color: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if color and sgr and text else text


def dumps(obj: Any) -> str:
    # A lone surrogate (a row stored before the door refused them) has no UTF-8 form:
    # print it as the JSON escape \udXXXX (still valid JSON), never fail the command.
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short_time(iso: str | None) -> str:
    """``2026-01-02T03:04:05.678901Z`` -> ``2026-01-02 03:04:05Z``."""
    if not iso:
        return "-"
    if parse_time(iso) is None:  # a placeholder such as "<unrenderable: time 1e+20>": as is
        return safe(iso)
    return iso.replace("T", " ")[:19] + "Z"


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def relative(iso: str | None, now: datetime) -> str:
    """``in 14.9 min`` / ``3.00 s ago`` / ``now``."""
    ts = parse_time(iso)
    if ts is None:
        return "-"
    delta = (ts - now).total_seconds()
    if abs(delta) < 0.5:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def at_or_now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def clip(text: str, width: int = 100) -> str:
    return cut(safe(text), width)


def table(header: list[str], rows: list[list[str]], *, color: bool = False,
          styles: list[Callable[[str], str]] | None = None, width: int | None = None,
          header_sgr: str = BOLD) -> str:
    """Columns of ``rows`` under ``header``; ``styles[i](cell)`` is cell i's SGR code.

    With ``width``, the last column is clipped so each line fits (never below 12
    cells): it holds the free text (an error, a note)."""
    cells = [[safe(c) for c in r] for r in [header, *rows]]
    ncols = max(len(r) for r in cells)
    for r in cells:
        r.extend([""] * (ncols - len(r)))
    widths = [max(text_width(r[i]) for r in cells) for i in range(ncols)]
    if width is not None and ncols > 1:
        fixed = sum(widths[:-1]) + len(_SEP) * (ncols - 1)
        room = max(12, width - fixed)
        if widths[-1] > room:
            for r in cells:
                r[-1] = cut(r[-1], room)
            widths[-1] = room
    lines = []
    for n, r in enumerate(cells):
        parts = []
        for i, cell in enumerate(r):
            if n == 0:
                sgr = header_sgr
            elif styles is not None and i < len(styles):
                sgr = styles[i](cell)
            else:
                sgr = ""
            pad = " " * (widths[i] - text_width(cell)) if i < ncols - 1 else ""
            parts.append(paint(cell, sgr, color) + pad)
        lines.append(_SEP.join(parts).rstrip())
    return "\n".join(lines)
