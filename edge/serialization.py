"""JSON, and only JSON, for every value edge stores.

Invariants:
- never pickle: a replica in a bucket is untrusted input at restore time;
- a value is encoded once, size-checked (default 1 MiB), and the workflow is
  handed ``json.loads`` of the stored text on the first run too, so the first
  run and a replay see the same thing (a tuple comes back as a list both times);
- dataclasses and pydantic models are encoded through ``to_json_default``
  (``dataclasses.asdict`` / ``model_dump(mode="json")``); anything else that
  JSON cannot express is a clear SerializationError naming what was encoded;
- only what the node can read back and render is stored (edge/limits.py): no
  NaN or infinity, no lone surrogate in a string or key (it has no UTF-8 form:
  no response could carry it), no nesting deeper than ``MAX_DEPTH`` levels.
  The checks are cheap on the hot path: the stored text is ASCII (escaped), so
  a surrogate can only hide behind a ``\\ud`` escape and deep nesting needs
  more than ``MAX_DEPTH`` brackets; only such texts are scanned.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from edge.errors import SerializationError
from edge.limits import MAX_DEPTH

DEFAULT_MAX_BYTES = 1024 * 1024


def to_json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        raise TypeError("sets are not JSON; pass a sorted list")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.dumps/loads with non-default arguments build a new encoder or
# decoder on every call, which is measurable on the per-step hot path.
_ENCODER = json.JSONEncoder(default=to_json_default, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_UTF8_ENCODER = json.JSONEncoder(default=to_json_default, allow_nan=False, ensure_ascii=False,
                                 separators=(",", ":"))
# The depth check runs on the stored text with C-speed string operations only. The
# encoder escapes every quote and backslash inside a string (\" and \\): once those
# escapes are dropped, the quotes left delimit strings. Keep only quotes and brackets,
# drop the strings (a bracket inside one is not nesting: "" pairs first, the rare
# string holding a bracket by regex), then peel innermost pairs, one level a pass.
_QUOTES_AND_BRACKETS = str.maketrans(
    "", "", "".join(chr(c) for c in range(128) if chr(c) not in '[]{}"'))
_STRING = re.compile(r'"[^"]*"')
_PAIR = re.compile(r"\[\]|\{\}")


def _depth_over(text: str, limit: int) -> bool:
    marks = text.replace("\\\\", "").replace('\\"', "").translate(_QUOTES_AND_BRACKETS)
    brackets = marks.replace('""', "")
    if '"' in brackets:
        brackets = _STRING.sub("", marks)
    for _ in range(limit):
        if not brackets:
            return False
        peeled = _PAIR.sub("", brackets)  # one pass, both kinds at once: one level
        if peeled == brackets:
            return False  # unbalanced: never the encoder's own output
        brackets = peeled
    return bool(brackets)


def _check_renderable(value: Any, text: str, what: str) -> None:
    if "\\ud" in text:  # a surrogate pair (an emoji) or a lone surrogate: find out which
        try:
            _UTF8_ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start] if isinstance(exc.object, str) else "?"
            raise SerializationError(
                f"{what} contains a lone surrogate (U+{ord(bad):04X}), which is not text",
                "send valid Unicode: a surrogate must be half of a pair "
                "(\\ud83d\\ude00 is one emoji; \\ud800 alone is refused)") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth_over(text, MAX_DEPTH):
        raise SerializationError(f"{what} nests deeper than {MAX_DEPTH} levels",
                                 "flatten the value")


def encode(value: Any, what: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Encode ``value`` for storage; ``what`` names it in errors ("output of step charge")."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"{what} is not JSON: {exc}",
            "return and pass only JSON values (dict, list, str, int, float, bool, None), "
            "dataclasses or pydantic models",
        ) from exc
    _check_renderable(value, text, what)
    if len(text) > max_bytes and len(text.encode("utf-8")) > max_bytes:
        raise SerializationError(
            f"{what} is {len(text.encode('utf-8'))} bytes, over the {max_bytes}-byte limit",
            "store large payloads elsewhere (a file or object store) and pass a reference",
        )
    return text


def decode(text: str) -> Any:
    return _DECODER.decode(text)


def roundtrip(value: Any, what: str, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, Any]:
    text = encode(value, what, max_bytes)
    return text, json.loads(text)


# What a valid value looks like, per CLI flag (quoted for the shell).
_JSON_HINTS = {
    "--input": 'quote it for the shell, e.g. --input \'{"order_id": "o-1"}\'',
    "--value": 'a JSON value, quoted for the shell: --value true, --value 42, '
               '--value \'"yes"\' (a string), --value \'{"ok": true}\'',
}


def parse_json_arg(text: str, what: str) -> Any:
    """Parse user-supplied JSON (CLI flags, HTTP bodies) with a clear error."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise SerializationError(
            f"{what} is not valid JSON: {exc}",
            _JSON_HINTS.get(what, 'e.g. {"order_id": "o-1"}, "text", 42, true or null'),
            code="bad_json",
        ) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise SerializationError(f"{what} is not valid JSON", "use finite numbers")
    return value
