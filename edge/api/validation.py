"""Request validation with the models of edge/api/models.py, and its errors: a pydantic
``ValidationError`` as one ``ApiError`` naming the first bad field.

Invariants:
- unknown fields come first (``unknown_field``), then missing ones (``missing_field``),
  then the rest (``bad_field``; ``bad_query`` for a query string), as the hand-written
  checks did;
- what the message says a field must be is rendered from the field's own JSON schema
  (``want``), the one the spec publishes, and the hint is the field's description.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from edge.api.models import NAME_PATTERN, TAG_VALUE
from edge.api.wire import ApiError


def what(value: Any) -> str:
    """A value, in words, for an error message ("an empty string", "5")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if not value:
            return "an empty string"
        return f"a string of {len(value)} characters" if len(value) > 40 else repr(value)
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return "an object"


def _num(value: float) -> str:
    # 3153600000, not 3.1536e+09: a bound is read by people.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def want(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """What a value of ``schema`` is, in words ("a non-empty string or null")."""
    if "$ref" in schema:
        return want(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = list(dict.fromkeys(want(s, defs) for s in schema[key]))
            return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return "one of " + ", ".join(map(str, values)) if len(values) > 1 else repr(values[0])
    kind = schema.get("type")
    if kind == "string":
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        text = "a non-empty string" if lo == 1 else "a string"
        if hi is not None:
            text += f" of at most {hi} characters"
        if schema.get("examples"):
            text += " like " + ", ".join(map(repr, schema["examples"]))
        elif schema.get("pattern") == NAME_PATTERN:
            text += " with no control characters"
        elif "pattern" in schema and schema["pattern"] != TAG_VALUE:
            text += f" matching {schema['pattern']}"
        return text
    if kind in ("integer", "number"):
        text = "an integer" if kind == "integer" else "a number"
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and hi is not None:
            return f"{text} in {_num(lo)}..{_num(hi)}"
        return text + (f" >= {_num(lo)}" if lo is not None else "")
    if kind == "object":
        return "an object" + (" of string values" if schema.get("additionalProperties") == {
            "type": "string"} else "")
    if kind == "array":
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if lo is not None and hi is not None:
            return f"an array of {lo} to {hi} items"
        return "an array"
    if kind == "boolean":
        return "a boolean"
    if kind == "null":
        return "null"
    return "any JSON value"


def _schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    cached = model.__dict__.get("_edge_schema")
    if cached is None:
        doc = model.model_json_schema()
        cached = (doc.get("properties", {}), doc.get("$defs", {}))
        setattr(model, "_edge_schema", cached)  # noqa: B010 (a cache on the class)
    return cached


def api_error(exc: ValidationError, model: type[BaseModel], query: bool = False) -> ApiError:
    """The first problem of ``exc`` as one ApiError naming the field."""
    props, defs = _schema(model)
    names = [f.alias or n for n, f in model.model_fields.items()]
    accepted = ", ".join(names) or "none"
    errors = exc.errors(include_url=False)
    rank = {"extra_forbidden": 0, "missing": 1}
    err = min(errors, key=lambda e: rank.get(e["type"], 2))
    loc = [str(p) for p in err["loc"]]
    name = loc[0] if loc else "body"
    # The field's full path, as a client writes it: starts[0].input, input[2].
    where = name + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
    if err["type"] == "extra_forbidden":
        if len(loc) > 1:  # inside an item of a list field (a batch's starts)
            return ApiError(400, "unknown_field", f"unknown field {where!r} in the request "
                            "body", "see the request's schema in GET /openapi.json")
        return ApiError(400, "unknown_field", f"unknown field {name!r} in the request body",
                        f"accepted fields: {accepted}")
    if err["type"] == "missing":
        return ApiError(400, "bad_query" if query else "missing_field",
                        f"field {name!r} is required", f"accepted fields: {accepted}")
    schema = props.get(name, {})
    hint = schema.get("description") or "see GET /openapi.json"
    if query:
        if schema.get("type") == "array" and len(loc) > 1:
            schema = schema.get("items", {})  # one of the repeated values
        schema = {k: v for k, v in schema.items() if k != "anyOf"} | (
            {"anyOf": [s for s in schema["anyOf"] if s != {"type": "null"}]}
            if "anyOf" in schema else {})  # a query string cannot send null
        return ApiError(400, "bad_query", f"query parameter {name!r}: "
                        f"{what(err.get('input'))} is not {want(schema, defs)}", hint)
    # Inside a union the location names the member tried, not a key: describe the field.
    union = "anyOf" in schema and not (len(schema["anyOf"]) == 2 and {"type": "null"}
                                       in schema["anyOf"])
    if len(loc) > 1 and not union:
        return ApiError(400, "bad_field", f"field {where!r} {_inner(err)}, not "
                        f"{what(err.get('input'))}", hint)
    return ApiError(400, "bad_field", f"field {name!r} must be {want(schema, defs)}, not "
                    f"{what(err.get('input'))}", hint)


def _inner(err: Any) -> str:
    return "must be " + {"string_type": "a string", "int_type": "an integer",
                         "string_too_long": "shorter", "string_pattern_mismatch":
                         "a string matching " + str((err.get("ctx") or {}).get("pattern", ""))
                         }.get(err["type"], "valid: " + str(err["msg"]).lower())


def parse_body(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise api_error(exc, model) from None


def parse_query(model: type[BaseModel], query: dict[str, Any]) -> Any:
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        raise api_error(exc, model, query=True) from None
