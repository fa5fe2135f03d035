"""The layer's generated modules are what scripts/codegen.py makes of today's schemas and libraries
(else: run `python -m scripts.codegen`)."""

from __future__ import annotations

from scripts import codegen


def test_generated_modules_are_up_to_date():
    stale = [path.name for path, text in codegen.outputs().items() if path.read_text(encoding="utf-8") != text]
    assert stale == [], "run: .venv/bin/python -m scripts.codegen"


def _outcome(validate, value):
    try:
        validate(value)
    except ValueError as error:  # both exception classes are ValueErrors with the same attributes
        return (type(error).__name__, error.message, error.name, error.rule, error.definition)
    return None


def test_generated_validators_judge_as_fastjsonschema_compiles_them():
    """The generator renames each validator's functions and patterns to share one module: what
    they decide and say is what fastjsonschema.compile of the same schema decides and says."""
    import copy
    import json

    import fastjsonschema

    from tuma.domain import contract, jobs, schema_checks

    job = {"version": 1, "origin": "api", "tenant_id": "tenant-a", "request_id": "msg_01HZY5Q3J5Q0W3V0S6Y9X8T7R6",
           "from": "SHOP", "body": "Hi", "recipients": [{"number": "+254712345678"}]}
    values = [None, "", "x" * 3000, "0712345678", 1, -1, 1.5, True, [], [1], ["0712345678"], {}, {"to": 1},
              {"to": "0712345678", "body": "Hi"}, {"to": "0712345678", "vars": {"a": []}}, job,
              {**job, "recipients": []}, {**job, "from": "not a sender id!"}, {**job, "extra": 1}]
    schemas = {("SEND_JOB",): jobs.schema(), **{("JOB", f): jobs.schema()["properties"][f] for f in codegen.JOB_FIELDS}}
    for name, entries in codegen._routes().items():
        for listed in {(), entries}:
            for field in [*contract.declaration(name).get("properties", {}), None]:
                schemas[(name, listed, field)] = contract.field_schema(name, listed, field)
        for field in entries:
            schemas[(name, field)] = contract.entry_schema(name, field)
    for key, schema in schemas.items():
        generated = (schema_checks.SEND_JOB if key == ("SEND_JOB",) else schema_checks.JOB_FIELDS[key[1]]
                     if key[0] == "JOB" else schema_checks.ROUTE_FIELDS[key] if len(key) == 3
                     else schema_checks.ROUTE_ENTRIES[key])
        compiled = fastjsonschema.compile(schema)
        for value in values:
            assert _outcome(generated, copy.deepcopy(value)) == _outcome(compiled, copy.deepcopy(value)), (
                key, json.dumps(value)[:80])
