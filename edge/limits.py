"""What the node can store and render back: bounds on times, durations, names and JSON.

Every value a client or a workflow hands the node passes one of these checks (or
``serialization.encode``, which uses them) before it is written, so that no
stored row can fail a later read (``edge list``, ``GET /v1/workflows``):

- times (a sleep's wake-up, an event wait's or a workflow's deadline) are
  finite and at most ``MAX_TIME``, 9999-12-31T23:59:59Z: the last second
  ``datetime`` (and so ``views.iso``) can render;
- durations (``--finished-before``, ``--retention``) are finite, 0..``MAX_DURATION``
  (100 years), so ``now - duration`` is a renderable time too;
- names (workflow ids, event names, dedup keys, published keys, queue and
  schedule names) are 1..200 characters of valid Unicode text: no lone
  surrogate (it has no UTF-8 form, so SQLite cannot bind it and no response
  can carry it) and no control character (C0, DEL, C1: they corrupt tables and
  terminals);
- JSON values carry no lone surrogate (in keys or strings) and nest at most
  ``MAX_DEPTH`` levels, well inside what the decoder's recursion limit reads back
  on any thread.

Errors are ``UsageError``s naming the field (HTTP 400); ``scrub`` is for text
the node produces itself (exception messages), which must never be refused.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from edge.errors import UsageError

MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()  # 253402300799.0
MAX_TIME_TEXT = "9999-12-31T23:59:59Z"
MAX_DURATION = 100 * 365 * 86400.0  # 100 years, in seconds
MAX_NAME = 200
MAX_DEPTH = 100
MAX_ERROR_CHARS = 16 * 1024  # an exception message is cut to this before it is stored

# C0 controls, DEL, C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def check_name(value: object, what: str, max_len: int = MAX_NAME) -> str:
    """``value`` as a name the node can store, index and print back; else a UsageError."""
    if not isinstance(value, str) or not value or len(value) > max_len:
        shown = value[:60] if isinstance(value, str) else value
        raise UsageError(f"invalid {what} {shown!r}: must be 1..{max_len} characters",
                         f"a {what} is a non-empty string of at most {max_len} characters")
    bad = _SURROGATE.search(value) or _CONTROL.search(value)
    if bad is not None:
        raise UsageError(f"invalid {what} {value[:60]!r}: character "
                         f"U+{ord(bad.group()):04X} at position {bad.start()} is not allowed",
                         f"a {what} is printable Unicode text: no control characters, "
                         "no lone surrogates")
    return value


def check_time(at: object, what: str) -> float:
    """``at`` (epoch seconds) as a time the node can store and render: finite, <= MAX_TIME."""
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise UsageError(f"{what} {at!r} is not a number of epoch seconds", "")
    try:
        value = float(at)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value > MAX_TIME:
        raise UsageError(f"{what} is out of range: {at!r} is after {MAX_TIME_TEXT}",
                         f"times must be finite and at most {MAX_TIME_TEXT} "
                         f"({MAX_TIME:.0f} epoch seconds)")
    return value


def check_duration(seconds: object, what: str, *, zero_ok: bool = True) -> float:
    """``seconds`` as a duration in 0..MAX_DURATION (> 0 unless ``zero_ok``)."""
    lo = "0" if zero_ok else "more than 0"
    rng = f"{lo}..{MAX_DURATION:.0f} seconds (100 years)"
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise UsageError(f"{what} {seconds!r} is not a number of seconds", f"use {rng}")
    try:
        value = float(seconds)
    except OverflowError:
        value = math.inf
    if not (value >= 0 if zero_ok else value > 0) or value > MAX_DURATION:
        raise UsageError(f"{what} {seconds!r} is out of range: the valid range is {rng}",
                         "e.g. 604800 (7 days)")
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` (a decoded JSON tree) nests lists/dicts deeper than ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, tuple)))
    return False


def scrub(text: str, max_chars: int = MAX_ERROR_CHARS) -> str:
    """Text the node produced (an exception message) made storable: lone surrogates
    escaped as ``\\udXXX``, cut to ``max_chars``. Never refuses."""
    if len(text) > max_chars:
        text = text[:max_chars] + f"... ({len(text) - max_chars} more characters)"
    if has_surrogate(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
