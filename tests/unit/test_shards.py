"""No hot partition (issue 12, item 4): a request's message items are spread over SHARDS partition
keys (tuma.store.table.recipient_pk), and every reader still finds all of them."""

from __future__ import annotations

from collections import Counter

import pytest

from test_costs_and_estimates import get, post, run_sender, single  # noqa: F401 (fixtures)
from tuma.domain.ids import recipient_id
from tuma.store import table as table_module
from tuma.store.table import SHARDS, message_pk, recipient_pk

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def test_a_1000_message_job_spreads_its_message_items_over_every_shard(post, run_sender, aws):
    code, body = post("/v1/messages/bulk", {"from": "SHOP", "provider": "sayasms", "messages": [
        {"to": f"07{12000000 + i}", "body": f"Hello {i}"} for i in range(1000)]})
    assert code == 202, body
    batch_id = body["batch_id"]
    run_sender()

    items = [i for i in aws.items() if i["pk"].startswith(message_pk("tenant-a", batch_id))]
    messages = [i for i in items if i["sk"].startswith("R#")]
    assert len(messages) == 1000 and {i["status"] for i in messages} == {"sent"}
    # Each message under its own shard's key; SHARDS keys of 100 messages each.
    assert all(i["pk"] == recipient_pk("tenant-a", batch_id, int(i["sk"][2:])) for i in messages)
    assert Counter(i["pk"] for i in messages) == {recipient_pk("tenant-a", batch_id, s): 100 for s in range(SHARDS)}
    # The request's own items (REQ, chunks, job) keep the request's key; its counters are in the
    # shard of the job's first message (tuma.store.progress).
    assert {i["pk"] for i in items if i["sk"][:2] not in ("R#", "PR")} == {message_pk("tenant-a", batch_id)}
    assert {i["pk"] for i in items if i["sk"] == "PROGRESS"} == {recipient_pk("tenant-a", batch_id, 1)}


def test_a_multi_recipient_send_reads_every_message_back_in_order(post, get, run_sender):
    numbers = [f"+2547{12000000 + i}" for i in range(2 * SHARDS + 3)]  # every shard, some twice
    code, body = post("/v1/messages", single("Hello", to=numbers, provider="sayasms"))
    assert code == 202, body
    request_id = body["message_id"]
    run_sender()

    view = get(f"/v1/messages/{request_id}")
    assert [r["message_id"] for r in view["recipients"]] == [recipient_id(request_id, n)
                                                             for n in range(1, len(numbers) + 1)]
    assert [r["number"] for r in view["recipients"]] == numbers
    assert {r["status"] for r in view["recipients"]} == {"sent"} and view["counts"] == {"sent": len(numbers)}
    # One message is one read, under its own shard.
    last = get(f"/v1/messages/{recipient_id(request_id, len(numbers))}")
    assert (last["status"], last["number"]) == ("sent", numbers[-1])


def test_reading_a_whole_request_queries_only_the_shards_its_positions_are_in(post, get, run_sender):
    queries = []

    def count(model, **_):
        queries.append(model.name)

    sent = {}
    for size in (1, 2 * SHARDS + 3):
        code, body = post("/v1/messages", single("Hello", to=[f"+2547{12000000 + i}" for i in range(size)]))
        assert code == 202, body
        sent[size] = body["message_id"]
    run_sender()
    events = table_module.table().meta.client.meta.events
    events.register("after-call.dynamodb", count)
    try:
        read = {}
        for size, request_id in sent.items():
            queries.clear()
            assert get(f"/v1/messages/{request_id}")["counts"] == {"sent": size}
            read[size] = queries.count("Query")
    finally:
        events.unregister("after-call.dynamodb", count)
    # The request's own items, then its messages' shards: 1 + 1 for one number, 1 + SHARDS for more.
    assert read == {1: 2, 2 * SHARDS + 3: 1 + SHARDS}
