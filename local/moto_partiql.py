"""moto taught DynamoDB's PartiQL INSERT as AWS documents it, for the in-process runs (unit tests,
bench/costs.py). moto 5.2 (py-partiql-parser 0.6) ignores an INSERT's `?` parameters (it fails on
them) and overwrites an existing item where DynamoDB refuses it with DuplicateItem, the one
answer tuma.store.sending's batched inserts rest on. MiniStack does both as AWS does: the
deployed path is tested there (tests/e2e).

Only the form tuma writes is taken over, `INSERT INTO "<table>" VALUE {'<name>': ?, ...}` with
one parameter per attribute; every other statement still goes to moto's own implementation."""

from __future__ import annotations

import re

_INSERT = re.compile(r"""\s*INSERT\s+INTO\s+"(?P<table>[^"]+)"\s+VALUE\s+\{(?P<names>.*)\}\s*""",
                     re.IGNORECASE | re.DOTALL)
_NAME = re.compile(r"""\s*'((?:[^']|'')+)'\s*:\s*\?\s*""")


def install() -> None:
    """Route moto's BatchExecuteStatement INSERTs through `_insert` (idempotent, process-wide)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.batch_execute_statement, "_tuma_inserts", False):
        return
    moto_batch = DynamoDBBackend.batch_execute_statement

    def batch_execute_statement(self, statements):
        return [_insert(self, statement) if parse_insert(statement) else moto_batch(self, [statement])[0]
                for statement in statements]

    batch_execute_statement._tuma_inserts = True
    DynamoDBBackend.batch_execute_statement = batch_execute_statement


def parse_insert(statement: dict) -> tuple[str, dict] | None:
    """(table, item) of an INSERT in tuma's form, else None (bench/costs.py sizes the item with it)."""
    match = _INSERT.fullmatch(statement.get("Statement", ""))
    if not match:
        return None
    names = [_NAME.fullmatch(part) for part in match["names"].split(",")]
    parameters = statement.get("Parameters") or []
    if not all(names) or len(names) != len(parameters):
        return None
    return match["table"], {name[1].replace("''", "'"): value for name, value in zip(names, parameters)}


def _insert(backend, statement: dict) -> dict:
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    table_name, item = parse_insert(statement)
    try:
        table = backend.get_table(table_name)
        backend.put_item(table_name, item, condition_expression="attribute_not_exists(#key)",
                         expression_attribute_names={"#key": table.hash_key_attr})
    except ConditionalCheckFailed:
        return {"TableName": table_name,
                "Error": {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}}
    except JsonRESTError as problem:  # DynamoDB's per-statement codes drop the "Exception"
        code = problem.error_type.rpartition("#")[2].removesuffix("Exception")
        return {"Error": {"Code": code.replace("Validation", "ValidationError"), "Message": problem.message}}
    return {"TableName": table_name}
