"""MiniStack, started with the one thing it lacks here and DynamoDB does (local/stack.py runs this
with MiniStack's own interpreter): MiniStack 1.5.33 stores a PartiQL INSERT's item without a
stream record, where DynamoDB records it as any other write. The callback dispatch reads the
table's stream, and the sender inserts the message items (tuma.store.sending)."""

from __future__ import annotations

import sys

from ministack.services import dynamodb

_store_insert = dynamodb._partiql_insert


def _partiql_insert(table, parsed):
    status, headers, body = _store_insert(table, parsed)
    if status == 200:
        item = parsed["item"]["M"] if set(parsed["item"]) == {"M"} else parsed["item"]
        dynamodb._emit_stream_event(dynamodb._normalize_table_name(parsed["table"]), "INSERT", None, item)
    return status, headers, body


dynamodb._partiql_insert = _partiql_insert

if __name__ == "__main__":
    from ministack.app import main

    sys.exit(main())
