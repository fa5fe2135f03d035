"""A request's shape, checked against the route's declared JSON Schema (tuma/schemas/): the one
declaration that docs/openapi.json is generated from and that shares its field rules with the
queue's job schema (send_job.v1.json). A refusal is Tuma's {"field", "reason"}, the field named by
its path (`recipients[3].to`); what a schema cannot say (numbers, segments, the schedule window,
callback hosts) stays with the domain modules that accept each route.

The checks are fastjsonschema's validators, generated as code ahead of time (scripts/codegen.py
writes tuma/domain/schema_checks.py): a function neither imports fastjsonschema nor compiles a
schema on its cold start. fastjsonschema stops at the first error of a validation. So that one
answer still names every wrong field, each top-level field is validated on its own (one problem
per field, its first), and the rules across fields, such as bulk's "either `messages` or
`template`", on their own too (their first problem).

A subschema's `x-reason` says in words what its `type`, `pattern`, `anyOf`, `not`... rules mean,
where the rule itself would tell a person nothing (a regular expression); bounds, enums and
required fields are worded from the rule."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from tuma.domain import schema_checks

_DROPPED = ("$schema", "$id", "$defs", "$comment", "examples")
_EXPLAINED = frozenset({"type", "pattern", "anyOf", "oneOf", "not", "const", "format"})
_TYPES = {"string": "a string", "array": "an array", "object": "an object", "integer": "a whole number",
          "number": "a number", "boolean": "true or false", "null": "null"}


@cache
def _file(name: str) -> dict:
    return json.loads(resources.files("tuma.schemas").joinpath(name).read_text(encoding="utf-8"))


def _pointer(document: dict, pointer: str):
    node = document
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _inlined(node, file: str):
    """`node` with every $ref replaced by what it points to (a ref's siblings, such as an
    `x-reason`, kept on top): the declarations are small and acyclic."""
    if isinstance(node, list):
        return [_inlined(item, file) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    own = {key: _inlined(value, file) for key, value in node.items() if key != "$ref" and key not in _DROPPED}
    if ref is None:
        return own
    target, _, pointer = ref.partition("#")
    target = target or file
    return {**_inlined(_pointer(_file(target), pointer), target), **own}


@cache
def declaration(name: str) -> dict:
    """Schema file `name` with its references resolved (what the validators check)."""
    return _inlined(_file(name), name)


def _without_items(schema: dict, entries: tuple[str, ...]) -> dict:
    """The request's schema, its entry lists (`entries`) checked as lists but not entry by entry:
    an entry that breaks its shape is rejected alone (entry_problem), not the whole request."""
    properties = {name: ({k: v for k, v in rule.items() if k != "items"} if name in entries else rule)
                  for name, rule in schema.get("properties", {}).items()}
    return {**schema, "properties": properties}


_FIELD_RULES = ("type", "properties", "additionalProperties", "required")  # checked field by field


def field_schema(name: str, entries: tuple[str, ...], field: str | None) -> dict:
    """What is checked of one top-level `field` of request `name`, or (None) its rules across
    fields (if/then/else, not...). scripts/codegen.py compiles each into schema_checks."""
    schema = _without_items(declaration(name), entries)
    if field is None:
        return {k: v for k, v in schema.items() if k not in _FIELD_RULES}
    return schema["properties"][field]


def entry_schema(name: str, field: str) -> dict:
    """What is checked of each entry of list `field` of request `name` (bulk's `messages[i]`)."""
    return declaration(name)["properties"][field]["items"]


def _validator(name: str, entries: tuple[str, ...], field: str | None):
    return schema_checks.ROUTE_FIELDS[(name, entries, field)]  # KeyError: add the route to scripts/codegen.py


def problems(name: str, payload: dict, entries: tuple[str, ...] = ()) -> list[dict]:
    """Every problem of `payload` (an object) against request schema `name`: unknown and missing
    fields, each present field's first problem, and the first across fields."""
    schema = declaration(name)
    declared = schema.get("properties", {})
    found = []
    if schema.get("additionalProperties") is False:
        found += [{"field": field, "reason": "unknown field"} for field in sorted(set(payload) - set(declared))]
    found += [{"field": field, "reason": "is required"} for field in schema.get("required", ()) if field not in payload]
    for field in declared:
        if field in payload:
            found += _first_problem(_validator(name, entries, field), payload[field], prefix=field)
    found += [p for p in _first_problem(_validator(name, entries, None), payload) if p not in found]
    return found


def field_problems(name: str, field: str, value: object) -> list[dict]:
    """The first problem of `value` as top-level `field` of request `name`; [] when it is right."""
    return _first_problem(_validator(name, (), field), value, prefix=field)


def top_field(path: str) -> str:
    """The top-level field a problem's path is in: `recipients` for `recipients[3].to`."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _entry_validator(name: str, field: str):
    return schema_checks.ROUTE_ENTRIES[(name, field)]


def entry_problem(name: str, field: str, entry: object) -> list[dict]:
    """The first problem of one entry of list `field` (bulk's `messages[i]`), its fields named
    within the entry (`body`, `vars`; "" for the entry itself); [] when its shape is right."""
    return _first_problem(_entry_validator(name, field), entry)


def _first_problem(validate, value, prefix: str = "") -> list[dict]:
    try:
        validate(value)
    except schema_checks.JsonSchemaValueException as error:
        return _translated(error, prefix)
    return []


def _translated(error: schema_checks.JsonSchemaValueException, prefix: str) -> list[dict]:
    """fastjsonschema's error as Tuma's problems. Its `name` is the path from `data`
    (`data.recipients[3].to`); `definition` is the subschema whose rule `rule` failed."""
    where = (prefix + error.name[len("data"):]).lstrip(".")  # "to" + "[3]", "" + ".body"

    def at(name: str) -> str:
        return f"{where}.{name}" if where else name

    definition, rule = error.definition or {}, error.rule
    if rule == "required":
        return [{"field": at(name), "reason": "is required"} for name in definition["required"]
                if not isinstance(error.value, dict) or name not in error.value]
    if rule == "additionalProperties":
        known = set(definition.get("properties", {}))
        return [{"field": at(name), "reason": "unknown field"} for name in sorted(set(error.value) - known)]
    if rule == "not" and set(definition["not"]) == {"required"}:  # "not with": the fields it forbids
        return [{"field": at(name), "reason": definition.get("x-reason", "is not allowed here")}
                for name in definition["not"]["required"]]
    if rule in _EXPLAINED and "x-reason" in definition:
        return [{"field": where, "reason": definition["x-reason"]}]
    return [{"field": where, "reason": _worded(rule, definition, error)}]


def _worded(rule: str, definition: dict, error: schema_checks.JsonSchemaValueException) -> str:
    bound = definition.get(rule)
    if rule == "type":
        kinds = [bound] if isinstance(bound, str) else list(bound)
        return "must be " + " or ".join(_TYPES.get(kind, kind) for kind in kinds)
    if rule == "minLength":
        return "must be a non-empty string" if bound == 1 else f"must be at least {bound} characters"
    if rule == "maxLength":
        return f"must be at most {bound} characters"
    if rule == "minItems":
        return "must be a non-empty array" if bound == 1 else f"must hold at least {bound} entries"
    if rule == "maxItems":
        return f"must hold at most {bound} entries"
    if rule == "enum":
        return "must be one of " + ", ".join(str(value) for value in bound if value is not None)
    if rule == "const":
        return f"must be {json.dumps(bound)}"
    if rule == "pattern":
        return f"must match {bound}"
    return error.message.removeprefix(error.name).strip()  # fastjsonschema's own words, without its `data`
