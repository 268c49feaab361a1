"""Search filters for listing workflows: a time bound given as a date, epoch seconds or an
age, and the checks the API, the CLI and the clients share.

Invariant: a filter that cannot be honoured exactly (an unparseable time, a year outside
1970..9999) is a UsageError naming the option, never a silently wider or empty result.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from edge.config import parse_duration
from edge.errors import UsageError

_AGE = re.compile(r"[0-9]+(\.[0-9]+)?[smhdw]")
_MIN, _MAX = 0.0, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_HINT = "an ISO 8601 time (2026-12-01T08:00Z; no zone = UTC), epoch seconds, or an age (30m, 7d)"
TIME_HINT = _HINT


def parse_when(text: object, now: float, what: str = "--since") -> float | None:
    """``text`` as epoch seconds (None for an empty value); an age means ``now`` minus it."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UsageError(f"{what}: expected a time, not {type(text).__name__}", _HINT)
    if isinstance(text, (int, float)):
        at = float(text)
    else:
        t = text.strip()
        if _AGE.fullmatch(t):
            at = now - parse_duration(t, what)
        else:
            try:
                at = float(t)
            except ValueError:
                try:
                    d = datetime.fromisoformat(t)
                except ValueError:
                    raise UsageError(f"{what} {t[:60]!r} is not a time", _HINT) from None
                # Shown times are rounded to the microsecond: half a microsecond earlier
                # makes a copied created_at include its own row as --since and exclude it
                # as --until, whichever way it was rounded.
                at = (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp() - 5e-7
    if not math.isfinite(at) or not _MIN <= at <= _MAX:
        raise UsageError(f"{what} {str(text)[:60]!r} is out of range",
                         "a time between 1970 and 9999")
    return at


def check_prefix(prefix: object) -> str | None:
    if prefix is None or prefix == "":
        return None
    if not isinstance(prefix, str) or len(prefix) > 200:
        raise UsageError(f"invalid id prefix {str(prefix)[:80]!r}", "1..200 characters")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the id prefix holds a lone surrogate", "send valid text") from None
    return prefix
