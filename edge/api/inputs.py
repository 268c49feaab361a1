"""Each workflow's input, typed from its signature: a JSON schema for the spec, and the check
a start request's ``input`` goes through before the node binds it.

Invariants:
- a parameter's type is its annotation (``typing.get_type_hints``, so string annotations
  work) as a pydantic ``TypeAdapter``; an unannotated parameter, ``Any``, or an annotation
  pydantic cannot describe is any JSON value, and is not checked here;
- the check is strict and in JSON mode (what a JSON client can send: ``"5"`` is not an
  int, an ISO string is a datetime), and only looks at the parameters it knows: arity,
  unknown names and missing arguments stay the node's ``bad_arguments`` (signature.bind);
- the schema accepts what the check and the bind accept: an object of keyword arguments,
  an array of positional ones (``prefixItems``), or null when nothing is required.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from edge.api.validation import want, what
from edge.api.wire import ApiError

if TYPE_CHECKING:
    from edge.engine import WorkflowDef

REF = "#/components/schemas/{model}"
_P = inspect.Parameter


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    required: bool
    schema: dict[str, Any]
    adapter: TypeAdapter[Any] | None  # None: any JSON value


def _param(p: inspect.Parameter, hints: dict[str, Any], defs: dict[str, Any]) -> Param:
    ann = hints.get(p.name, Any)
    adapter: TypeAdapter[Any] | None = None
    schema: dict[str, Any] = {}
    if ann is not Any:
        try:
            adapter = TypeAdapter(ann)
            schema = adapter.json_schema(ref_template=REF)
        except Exception:  # noqa: BLE001 (an annotation pydantic cannot describe: any JSON)
            adapter, schema = None, {}
    defs.update(schema.pop("$defs", {}))
    if p.default is not _P.empty:
        try:
            schema["default"] = json.loads(json.dumps(p.default))
        except (TypeError, ValueError):
            pass
    return Param(p.name, p.kind, p.default is _P.empty, schema, adapter)


class WorkflowInput:
    """The typed input of one workflow."""

    def __init__(self, wd: WorkflowDef, defs: dict[str, Any]) -> None:
        self.name = wd.name
        self.defs = defs
        try:
            hints = typing.get_type_hints(wd.fn)
        except Exception:  # noqa: BLE001 (unresolvable annotations: the input is any JSON)
            hints = {}
        ps = list(wd.signature.parameters.values())
        self.params = [_param(p, hints, defs) for p in ps
                       if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)]
        self.var_args = next((_param(p, hints, defs) for p in ps
                              if p.kind is _P.VAR_POSITIONAL), None)
        self.var_kwargs = next((_param(p, hints, defs) for p in ps
                                if p.kind is _P.VAR_KEYWORD), None)

    def schema(self) -> dict[str, Any]:
        by_name = [p for p in self.params if p.kind is not _P.POSITIONAL_ONLY]
        positional = [p for p in self.params if p.kind is not _P.KEYWORD_ONLY]
        kwargs: dict[str, Any] = {
            "type": "object", "title": "keyword arguments",
            "properties": {p.name: p.schema for p in by_name},
            "additionalProperties": self.var_kwargs.schema if self.var_kwargs else False}
        required = [p.name for p in by_name if p.required]
        if required:
            kwargs["required"] = required
        forms: list[dict[str, Any]] = [kwargs]
        if not any(p.required for p in self.params if p.kind is _P.KEYWORD_ONLY):
            args: dict[str, Any] = {
                "type": "array", "title": "positional arguments",
                "items": self.var_args.schema if self.var_args else {},
                "minItems": sum(p.required for p in positional)}
            if positional:
                args["prefixItems"] = [p.schema for p in positional]
            if self.var_args is None:
                args["maxItems"] = len(positional)
            forms.append(args)
        if not any(p.required for p in self.params):
            forms.append({"type": "null"})
        return {"anyOf": forms, "description": f"the arguments of {self.name}"}

    @property
    def required(self) -> bool:
        return any(p.required for p in self.params)

    def check(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """A ``bad_field`` ApiError naming the first argument of the wrong type."""
        positional = [p for p in self.params if p.kind is not _P.KEYWORD_ONLY]
        checks: list[tuple[str, Param | None, Any]] = []
        for i, value in enumerate(args):
            p = positional[i] if i < len(positional) else self.var_args
            checks.append((f"input[{i}]", p, value))
        named = {p.name: p for p in self.params if p.kind is not _P.POSITIONAL_ONLY}
        for key, value in kwargs.items():
            checks.append((f"input.{key}", named.get(key, self.var_kwargs), value))
        for where, p, value in checks:
            if p is None or p.adapter is None:
                continue
            try:
                p.adapter.validate_json(json.dumps(_whole(value)), strict=True)
            except (ValidationError, ValueError) as exc:
                raise ApiError(400, "bad_field", f"field {where!r} of workflow {self.name} "
                               f"must be {want(p.schema, self.defs)}, not {what(value)}"
                               f"{_detail(exc)}",
                               "see the workflow's input in GET /openapi.json") from None


def _whole(value: Any) -> Any:
    """``value`` with integral floats as ints: JSON Schema counts 3.0 as an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def _detail(exc: Exception) -> str:
    """Where inside a structured argument the first problem is ("" at the top)."""
    if isinstance(exc, ValidationError):
        err = exc.errors(include_url=False)[0]
        if err["loc"]:
            loc = "".join(f"[{p!r}]" for p in err["loc"])
            return f" ({loc}: {str(err['msg']).lower()})"
    return ""


class AppInputs:
    """Every workflow's input of one app (rebuilt when the app's workflows change)."""

    def __init__(self, workflows: dict[str, WorkflowDef]) -> None:
        self.defs: dict[str, Any] = {}
        self.key = tuple(workflows.items())
        self.by_name = {name: WorkflowInput(wd, self.defs) for name, wd in workflows.items()}
