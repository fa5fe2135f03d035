"""moto's DynamoDB made safe across threads, for the in-process runs (unit tests, bench/costs.py).

moto 5.2 is not: an UpdateItem reads the item, applies the expression and stores it back, so two
threads adding to one counter (the expirer's and the sender's pools move a batch's counters at
once) can lose one ADD, and a transaction's copy of a table iterating while another thread writes
raises "dictionary changed size during iteration". DynamoDB applies each request atomically; so
does moto here, one request at a time."""

from __future__ import annotations

import threading


def install() -> None:
    """Serialise moto's DynamoDB requests (idempotent, process-wide)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_tuma_serialised", False):
        return
    one_at_a_time = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialised(self):
        with one_at_a_time:
            return call_action(self)

    serialised._tuma_serialised = True
    DynamoHandler.call_action = serialised
