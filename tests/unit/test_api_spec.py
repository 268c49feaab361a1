"""The generated spec and the typed workflow inputs, without a server: one app's signatures
become its start schemas, and the input check accepts exactly what those schemas accept."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

import edge
from edge.api.models import ListQuery, StartRequest
from edge.api.routes import ROUTES, ApiError
from edge.api.spec import ApiDoc
from edge.api.validation import parse_body
from edge.errors import UsageError
from edge.store.listing import (
    CURSOR_PATTERN,
    MAX_CURSOR,
    check_cursor,
    decode_cursor,
    encode_cursor,
)


class Order(BaseModel):
    sku: str
    qty: int


class Opaque:
    """A type pydantic cannot describe: the parameter takes any JSON value."""


app = edge.App("spec-test")


@app.workflow()
def typed(order: Order, note: str = "", *, rush: bool = False) -> None: ...


@app.workflow(name="kw.only/v2")
def kw_only(*, site: str) -> None: ...


@app.workflow()
def loose(a, b: Any, c: Opaque, *rest: int, **extra: float) -> None:  # type: ignore[no-untyped-def]
    ...


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ApiDoc(ROUTES).spec_bytes(app))
    return doc


def _input_schema(doc: dict[str, Any], comp: str) -> dict[str, Any]:
    schema = doc["components"]["schemas"][comp]["properties"]["input"]
    # Resolve component refs for jsonschema: the document is the root.
    return {**schema, "components": doc["components"]}


def test_spec_is_valid_and_has_every_workflow() -> None:
    doc = _doc()
    validate(doc)
    one_of = doc["paths"]["/v1/workflows"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert set(one_of["discriminator"]["mapping"]) == {"typed", "kw.only/v2", "loose"}
    assert "StartRequest_kw.only_v2" in doc["components"]["schemas"]
    queue = doc["paths"]["/v1/queues/{name}/workflows"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert len(queue["oneOf"]) == 3
    order = doc["components"]["schemas"]["StartRequest_typed"]["properties"]["input"][
        "anyOf"][0]["properties"]["order"]
    assert order["required"] == ["sku", "qty"] and order["properties"]["qty"]["type"] == "integer"


@pytest.mark.parametrize("comp, inp, ok", [
    ("StartRequest_typed", {"order": {"sku": "a", "qty": 2}}, True),
    ("StartRequest_typed", [{"sku": "a", "qty": 2}, "n"], True),
    ("StartRequest_typed", {"order": {"sku": "a", "qty": "2"}}, False),
    ("StartRequest_typed", {"order": {"sku": "a", "qty": 2}, "rush": "yes"}, False),
    ("StartRequest_kw.only_v2", {"site": "paris"}, True),
    ("StartRequest_kw.only_v2", ["paris"], False),  # keyword-only: no array form
    ("StartRequest_loose", {"a": [1], "b": None, "c": {"x": 1}}, True),
    ("StartRequest_loose", [1, 2, 3, 4, 5], True),
    ("StartRequest_loose", [1, 2, 3, "four"], False),  # *rest: int
])
def test_schema_and_check_agree(comp: str, inp: Any, ok: bool) -> None:
    doc = _doc()
    valid = jsonschema.Draft202012Validator(_input_schema(doc, comp)).is_valid(inp)
    assert valid is ok, (comp, inp)
    wi = ApiDoc(ROUTES).inputs(app).by_name[doc["components"]["schemas"][comp]["properties"][
        "workflow"]["const"]]
    args = inp if isinstance(inp, list) else []
    kwargs = inp if isinstance(inp, dict) else {}
    if ok:
        wi.check(args, kwargs)
    elif comp != "StartRequest_kw.only_v2":  # arity is the node's bind, not this check
        with pytest.raises(ApiError) as err:
            wi.check(args, kwargs)
        assert err.value.code == "bad_field" and "input" in err.value.message


def test_body_errors_name_the_field() -> None:
    with pytest.raises(ApiError) as err:
        parse_body(StartRequest, {"workflow": ""})
    assert err.value.message == ("field 'workflow' must be a non-empty string of at most 200 "
                                 "characters with no control characters, not an "
                                 "empty string")
    with pytest.raises(ApiError) as err:
        parse_body(StartRequest, {"workflow": "w", "id": "x" * 201})
    assert "at most 200 characters" in err.value.message
    assert "a string of 201 characters" in err.value.message


def test_the_cursor_schema_is_the_form_the_server_checks() -> None:
    # Every cursor a page can end with fits the published form, and every form the server
    # refuses is outside it (schemathesis found a garbage cursor the spec let through).
    doc = _doc()
    params = {p["name"]: p for p in doc["paths"]["/v1/workflows"]["get"]["parameters"]}
    schema = params["cursor"]["schema"]
    assert (schema["pattern"], schema["maxLength"]) == (CURSOR_PATTERN, MAX_CURSOR)
    valid = jsonschema.Draft202012Validator(schema).is_valid
    for created, wid in [(1.5, "a"), (253402300799.99997, "\U0001f600" * 200),
                         (-1.7976931348623157e308, "x|y")]:
        cursor = encode_cursor(created, wid)
        assert valid(cursor) and decode_cursor(cursor) == (created, wid), cursor
    for garbage in ["abc", "MTIz fGFiYw==", "%%", "A" * (MAX_CURSOR + 4), "MTIzfGFiYw=",
                    "MTIz+GFiYw==", "é"]:
        assert not valid(garbage), garbage
        with pytest.raises(UsageError, match="invalid cursor"):
            check_cursor(garbage)
    # Right form, no position in it: refused by the server (the spec cannot say this part).
    for form_only in ["AAAA", "bmFufHg=", "MTIz", "fHg="]:
        assert valid(form_only)
        with pytest.raises(UsageError, match="invalid cursor"):
            decode_cursor(form_only)


def test_query_status_is_an_enum_in_the_spec() -> None:
    doc = _doc()
    params = {p["name"]: p for p in doc["paths"]["/v1/workflows"]["get"]["parameters"]}
    assert params["status"]["schema"]["enum"] == list(edge.store.WORKFLOW_STATUSES)
    assert "pattern" in params["since"]["schema"] and params["tag"]["explode"] is True
    assert ListQuery.model_validate({"status": "failed"}).status == "FAILED"
