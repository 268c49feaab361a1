"""Workflow tags: what a workflow is about (``{"site": "paris", "order": "o-1"}``), for search.

Invariants (checked here, before anything is stored, so a tag can always be rendered
back): at most ``MAX_TAGS`` per workflow; a key is 1..64 characters of letters, digits
and ``_ . : -``; a value is a string of 0..256 characters with no control characters
and no lone surrogates. Tags are set at start, travel to children (a child's own tags
override its parent's by key) and are copied by fork; they never change afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from edge.errors import UsageError

MAX_TAGS = 20
MAX_VALUE = 256
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HINT = "tags are {\"key\": \"value\"}: keys of letters, digits, _ . : - (1..64), string values"


def check_tags(tags: object, where: str = "tags") -> dict[str, str]:
    """``tags`` as a validated dict (None is no tags); a UsageError naming the bad entry."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise UsageError(f"{where} must be an object of string values, not "
                         f"{type(tags).__name__}", _HINT)
    if len(tags) > MAX_TAGS:
        raise UsageError(f"{where} has {len(tags)} entries, over the limit of {MAX_TAGS}", _HINT)
    out: dict[str, str] = {}
    for key, value in tags.items():
        check_key(key, where)
        out[key] = check_value(value, f"{where}[{key!r}]")
    return out


def check_key(key: object, where: str = "tags") -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise UsageError(f"{where}: invalid tag key {str(key)[:80]!r}", _HINT)
    return key


def check_value(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where} must be a string, not {type(value).__name__}", _HINT)
    if len(value) > MAX_VALUE:
        raise UsageError(f"{where} is {len(value)} characters, over {MAX_VALUE}", _HINT)
    if _CONTROL.search(value):
        raise UsageError(f"{where} holds a control character", _HINT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{where} holds a lone surrogate (not storable as UTF-8)",
                         _HINT) from None
    return value


def parse_filters(items: Iterable[str], where: str = "--tag") -> dict[str, str]:
    """``["k=v", ...]`` (the CLI's ``--tag``, the API's repeated ``tag``) as a dict."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{where} {item[:80]!r} is not KEY=VALUE", "e.g. --tag site=paris")
        check_key(key, where)
        if key in out and out[key] != value:
            raise UsageError(f"{where} gives {key!r} twice with different values",
                             "a workflow has one value per key")
        out[key] = check_value(value, f"{where} {key}")
    if len(out) > MAX_TAGS:
        raise UsageError(f"{where}: {len(out)} filters, over {MAX_TAGS}", "filter on fewer tags")
    return out
