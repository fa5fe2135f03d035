"""GET /v1/batches/{id} in O(1) (issue 12): the sender, the delivery reports and the expirer keep
a batch's counters, exact under a redelivered job and a repeated report, and the route reads the
same keys whatever the batch's size. The counters are split over the message shards' keys, so a
batch's reports do not all write one item."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from conftest import table_hook
from test_costs_and_estimates import get, post, run_sender  # noqa: F401 (fixtures)
from tuma.domain import reports
from tuma.domain.reports import parse_report
from tuma.store import progress
from tuma.store.reports import DynamoReportStore, expire_due
from tuma.store.table import SHARDS, message_pk, recipient_key


@contextmanager
def items_read():
    """How many keys the handlers ask DynamoDB for inside the block (a Query's items count as keys)."""
    read = Counter()

    def count(params, model, **_):
        if model.name in ("GetItem",):
            read["items"] += 1
        elif model.name == "BatchGetItem":
            read["items"] += sum(len(spec["Keys"]) for spec in params.get("RequestItems", {}).values())
        elif model.name in ("Query", "Scan"):
            read["items"] += 1000  # a query reads what it finds: never constant

    with table_hook("provide-client-params.dynamodb", count):
        yield read


def bulk(post, n: int, provider: str = "sayasms") -> str:
    code, body = post("/v1/messages/bulk", {"from": "SHOP", "provider": provider, "messages": [
        {"to": f"07{12000000 + i}", "body": f"Hello {i}"} for i in range(n)]})
    assert code == 202, body
    return body["batch_id"]


def view_from_every_message(get, aws, batch_id: str) -> dict:
    """The same route answered the old way, from every message (a batch without counters)."""
    aws.table.update_item(Key={"pk": message_pk("tenant-a", batch_id), "sk": "REQ"},
                          UpdateExpression="REMOVE #g", ExpressionAttributeNames={"#g": "segments"})
    return get(f"/v1/batches/{batch_id}")


def moto_faults(monkeypatch, method: str, when, fault: str, times: int = 1) -> list:
    """moto's DynamoDB `method` (e.g. "update_item") misbehaving on the first `times` calls for which
    `when(args, kwargs)` holds: "lost" applies the write, then answers 500 (the answer lost: botocore sends it again);
    "refused" answers 500 without applying it; "throttled" answers DynamoDB's 400 for a write it did
    not apply. Returns the calls it hit."""
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models import DynamoDBBackend

    code, status = {"lost": ("InternalServerError", 500), "refused": ("InternalServerError", 500),
                    "throttled": ("ProvisionedThroughputExceededException", 400)}[fault]
    real, hits = getattr(DynamoDBBackend, method), []

    def faulty(self, *args, **kwargs):
        hit = len(hits) < times and when(args, kwargs)
        if hit:
            hits.append(args)
            if fault != "lost":
                raise JsonRESTError(code, code) if status == 400 else _server_error(code)
        answer = real(self, *args, **kwargs)
        if hit:
            raise _server_error(code)
        return answer

    monkeypatch.setattr(DynamoDBBackend, method, faulty)
    return hits


def _server_error(code: str):
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, code)
    error.code = 500
    return error


def progress_key(args, kwargs) -> bool:
    return args[1]["sk"] == {"S": "PROGRESS"}


def status_write_to(status: str):
    def matches(args, kwargs) -> bool:
        return args[1]["sk"]["S"].startswith("R#") and {"S": status} in (
            kwargs.get("expression_attribute_values") or {}).values()
    return matches


def test_the_batch_route_reads_the_same_keys_whatever_the_batch_size(post, get, aws, functions, context,
                                                                            simsaya, sim254):
    from conftest import sqs_event

    read_by_size = {}
    for n in (3, 1100):
        batch_id = bulk(post, n)
        # One job per invocation: moto's TransactWriteItems is not safe beside concurrent writes.
        for body in [m["Body"] for m in aws.receive(aws.queue_url)]:
            assert functions("sender").handler(sqs_event([body]), context) == {"batchItemFailures": []}
        with items_read() as read:
            view = get(f"/v1/batches/{batch_id}")
        assert view["counts"] == {"sent": n} and view["done"]
        read_by_size[n] = read["items"]

    # The request item and the counters' SHARDS items, in one BatchGetItem.
    assert read_by_size == {3: 1 + SHARDS, 1100: 1 + SHARDS}


def test_the_counters_agree_with_the_messages_before_and_after_sending(post, get, run_sender, aws):
    batch_id = bulk(post, 5, provider="254sms")
    before = get(f"/v1/batches/{batch_id}")
    assert before["counts"] == {"queued": 5} and before["estimated_cost"] == "KES 4.00"
    run_sender()
    counted = get(f"/v1/batches/{batch_id}")

    assert counted == view_from_every_message(get, aws, batch_id)
    assert counted["counts"] == {"sent": 5}
    assert (counted["total_cost"], counted["estimated_cost"]) == ("KES 4.00", "KES 0.00")


def test_a_redelivered_job_is_counted_once(post, get, aws, functions, context, simsaya, sim254):
    from conftest import sqs_event

    batch_id = bulk(post, 4)
    bodies = [m["Body"] for m in aws.receive(aws.queue_url)]
    sender = functions("sender")
    for _ in range(3):  # the same SQS message delivered three times
        assert sender.handler(sqs_event(bodies), context) == {"batchItemFailures": []}

    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 4} and view["total_cost"] == "KES 3.60"


def test_a_repeated_report_moves_the_counts_once_and_expiry_moves_the_rest(post, get, run_sender, aws):
    batch_id = bulk(post, 3)
    run_sender()
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 1))["Item"]["provider_message_id"]
    delivered = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
    now = datetime.now(timezone.utc)

    outcomes = [reports.receive(delivered, DynamoReportStore(), now) for _ in range(3)]
    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert get(f"/v1/batches/{batch_id}")["counts"] == {"delivered": 1, "sent": 2}

    expire_due(now + timedelta(hours=49), lambda: 60.0, timedelta(hours=48))
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"delivered": 1, "expired": 2}
    assert view == view_from_every_message(get, aws, batch_id)


def test_a_batch_accepted_before_the_counters_is_still_answered_from_its_messages(post, get, run_sender, aws):
    batch_id = bulk(post, 2)
    run_sender()
    view = view_from_every_message(get, aws, batch_id)
    assert view["counts"] == {"sent": 2}


def test_a_batchs_reports_move_counters_under_every_shard_not_one_item(post, get, run_sender, aws):
    n = 2 * SHARDS
    batch_id = bulk(post, n)
    run_sender()
    ids = [aws.table.get_item(Key=recipient_key("tenant-a", batch_id, i))["Item"]["provider_message_id"]
           for i in range(1, n + 1)]  # a batch's messages are numbered from 1
    counters_written = Counter()

    def count(params, model, **_):
        key = json.loads(params["body"]).get("Key", {}) if model.name == "UpdateItem" else {}
        if key.get("sk") == {"S": "PROGRESS"}:
            counters_written[key["pk"]["S"]] += 1

    now = datetime.now(timezone.utc)
    with table_hook("before-call.dynamodb", count):
        for provider_id in ids:
            report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
            assert reports.receive(report, DynamoReportStore(), now) == "applied"

    # Each shard's counters took its own messages' reports: no item took more than n / SHARDS.
    assert len(counters_written) == SHARDS and set(counters_written.values()) == {n // SHARDS}
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"delivered": n}
    assert view == view_from_every_message(get, aws, batch_id)


def test_a_job_no_provider_took_closes_its_claim_and_its_retry_sends_it(post, get, aws, functions, context,
                                                                         simsaya, sim254):
    """A job whose every message was refused (503 through its retries) records no outcome: its
    claim still closes (`retry`), so the redelivered job sends at once."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from conftest import sqs_event

    batch_id = bulk(post, 3)  # pinned to SayaSMS: no failover
    bodies = [m["Body"] for m in aws.receive(aws.queue_url)]
    simsaya.faults({"status": 503, "count": 3})  # the call and its two retries
    sender = functions("sender")
    with pytest.raises(BatchProcessingError, match="3 message\\(s\\) not taken: HTTP 503"):
        sender.handler(sqs_event(bodies), context)  # the batch's only job failed: it comes back whole
    assert get(f"/v1/batches/{batch_id}")["counts"] == {"queued": 3}

    assert sender.handler(sqs_event(bodies), context) == {"batchItemFailures": []}
    assert get(f"/v1/batches/{batch_id}")["counts"] == {"sent": 3}


def test_every_counter_item_expires_with_its_batch(post, get, run_sender, aws):
    """The counters are kept as long as the batch's messages, not forever: every write that can
    create a PROGRESS item (the sender's close, a report's or the expirer's move, a cancellation's
    note) gives it the table's TTL, found by bench/costs.py's storage scan."""
    n = 2 * SHARDS
    batch_id = bulk(post, n)
    run_sender()
    now = datetime.now(timezone.utc)
    for i in range(1, n + 1, 2):  # half delivered, in every shard; the other half expire
        provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, i))["Item"]["provider_message_id"]
        report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
        assert reports.receive(report, DynamoReportStore(), now) == "applied"
    expire_due(now + timedelta(hours=49), lambda: 60.0, timedelta(hours=48))
    assert get(f"/v1/batches/{batch_id}")["counts"] == {"delivered": n // 2, "expired": n // 2}
    cancelled_batch = bulk(post, 1)
    progress.note_cancellation("tenant-a", cancelled_batch)

    for batch in (batch_id, cancelled_batch):
        request_expires = aws.item(message_pk("tenant-a", batch), "REQ")["expires_at"]
        found = [aws.table.get_item(Key=progress.key("tenant-a", batch, shard)) for shard in range(SHARDS)]
        counters = [answer["Item"] for answer in found if "Item" in answer]
        assert counters, batch
        for item in counters:
            assert "expires_at" in item, item
            # No earlier than the request item (the batch GET needs both), and not long after it.
            assert request_expires <= item["expires_at"] <= request_expires + 3600, (item, request_expires)


def test_a_takeover_after_a_sender_died_before_closing_counts_reports_that_came_between_once(post, get, aws,
                                                                                          simsaya):
    """The sender records a batch job's messages and dies before closing its claim (where its
    counts are added). A delivery report moves one message meanwhile (-sent, +delivered). The
    takeover finds every message recorded and counts each as the dead sender recorded it (`sent`),
    not as it is now: the report's move is already counted."""
    from conftest import Clock
    from test_promise_sender import GRACE, T0, Killed, one_provider, saya
    from tuma.domain.jobs import parse_job
    from tuma.domain.sending import send_job
    from tuma.store.linking import ReportingMessageStore

    n = 4
    batch_id = bulk(post, n)
    [body] = [m["Body"] for m in aws.receive(aws.queue_url)]
    job, clock = parse_job(body, "sqs-1"), Clock(T0)
    dying = ReportingMessageStore(timedelta(hours=48))

    def die(*_):
        raise Killed

    dying.finish = die
    with pytest.raises(Killed):
        send_job(job, dying, one_provider(saya(simsaya.url), clock), clock, GRACE)
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 2))["Item"]["provider_message_id"]
    report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
    assert reports.receive(report, DynamoReportStore(), clock()) == "applied"
    clock.advance(seconds=GRACE.total_seconds() + 1)

    send_job(job, ReportingMessageStore(timedelta(hours=48)), one_provider(saya(simsaya.url), clock), clock, GRACE)

    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": n - 1, "delivered": 1}
    assert view == view_from_every_message(get, aws, batch_id)
    assert len(simsaya.messages()) == n  # the takeover sent nothing again


@pytest.mark.parametrize("write", ["counter move", "status write"])
def test_a_reports_write_whose_answer_was_lost_never_leaves_the_counts_wrong(post, get, run_sender, aws,
                                                                            monkeypatch, write):
    """DynamoDB applies one of a report's writes and its answer is lost (a 500); botocore sends it
    again. The counter move (an ADD) moved the counts twice (sent 1, delivered 2); the status
    write's retry failed its condition, read as a duplicate, and the move was never made (sent 3).
    Now the move is one attempt, and a status write found done by its own retry is applied; where
    the old status or the move's outcome is unknown, the batch is read from its messages."""
    batch_id = bulk(post, 3)
    run_sender()
    when = progress_key if write == "counter move" else status_write_to("delivered")
    lost = moto_faults(monkeypatch, "update_item", when, "lost")
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 1))["Item"]["provider_message_id"]
    report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")

    assert reports.receive(report, DynamoReportStore(), datetime.now(timezone.utc)) == "applied"
    assert lost
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 2, "delivered": 1}
    assert view == view_from_every_message(get, aws, batch_id)


def test_a_throttled_counter_move_is_tried_again_and_counted_once(post, get, run_sender, aws, monkeypatch):
    """A throttled write was not applied: that one is worth another try, and the counts stay in use."""
    batch_id = bulk(post, 3)
    run_sender()
    refused = moto_faults(monkeypatch, "update_item", progress_key, "throttled", times=2)
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 1))["Item"]["provider_message_id"]
    report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
    assert reports.receive(report, DynamoReportStore(), datetime.now(timezone.utc)) == "applied"

    assert len(refused) == 2
    _, counters = progress.read("tenant-a", batch_id)
    assert not counters.get("uncounted") and progress.counts(counters) == {"sent": 2, "delivered": 1}


def test_the_senders_counts_ride_a_transaction_whose_retries_keep_one_token(post, get, aws, functions, context,
                                                                            simsaya, sim254, monkeypatch):
    """The sender's close (claim and counts, one transaction) whose answer was lost is sent again by
    botocore with the same ClientRequestToken, which DynamoDB applies once (within 10 minutes).
    moto ignores the token, so what this checks is the premise: one token for every attempt."""
    from conftest import sqs_event

    batch_id = bulk(post, 3)
    bodies = [m["Body"] for m in aws.receive(aws.queue_url)]
    # Refused here, not applied: on AWS a 500 may have been applied, and the token decides.
    refused = moto_faults(monkeypatch, "transact_write_items", lambda args, kwargs: True, "refused")
    tokens = []
    with table_hook("before-send.dynamodb.TransactWriteItems",
                    lambda request, **_: tokens.append(json.loads(request.body)["ClientRequestToken"])):
        assert functions("sender").handler(sqs_event(bodies), context) == {"batchItemFailures": []}

    assert refused and len(tokens) == 2 and tokens[0] == tokens[1]
    assert get(f"/v1/batches/{batch_id}")["counts"] == {"sent": 3}


def test_an_expirys_status_write_whose_answer_was_lost_still_leaves_the_counts_exact(post, get, run_sender, aws,
                                                                                    monkeypatch):
    batch_id = bulk(post, 3)
    run_sender()
    lost = moto_faults(monkeypatch, "update_item", status_write_to("expired"), "lost")

    expire_due(datetime.now(timezone.utc) + timedelta(hours=49), lambda: 60.0, timedelta(hours=48))

    assert lost
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"expired": 3}
    assert view == view_from_every_message(get, aws, batch_id)


def test_a_report_applied_twice_is_a_duplicate_and_the_batch_is_then_read_from_its_messages(post, get, run_sender,
                                                                                           aws):
    """The same report applied again (the sender and the webhook both applying one parked report,
    or a sender taking over one that died after applying it and before counting it): a duplicate
    for the message. Whether the first application was counted cannot be told, so the batch is
    read from its messages from then on: exact either way."""
    batch_id = bulk(post, 2)
    run_sender()
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 1))["Item"]["provider_message_id"]
    report = parse_report({"event": "message.delivered", "message_id": provider_id}, "2026-12-02T00:00:00.000Z")
    store, ref = DynamoReportStore(), DynamoReportStore().mapping(provider_id)
    now = datetime.now(timezone.utc)

    assert [store.apply(ref, report, now), store.apply(ref, report, now)] == ["applied", "duplicate"]
    _, counters = progress.read("tenant-a", batch_id)
    assert counters.get("uncounted")
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 1, "delivered": 1} and view == view_from_every_message(get, aws, batch_id)


def _dies_at_the_first_move(monkeypatch) -> list:
    """The invocation dies right after a status write, before its counter move (once)."""
    from test_promise_sender import Killed

    real_move, died = progress.move, []

    def move(*args):
        if not died:
            died.append(args)
            raise Killed
        return real_move(*args)

    monkeypatch.setattr(progress, "move", move)
    return died


def test_a_report_delivered_again_after_its_webhook_died_before_counting_leaves_the_counts_exact(
        post, get, run_sender, aws, monkeypatch):
    """The webhook writes `delivered` and dies before the move; SayaSMS, with no 200, sends the
    report again (another delivery, another `at`): it is a duplicate for the message, and the
    batch's counts cannot say whether the first delivery counted it (before: sent 3, delivered 0)."""
    from test_promise_sender import Killed

    batch_id = bulk(post, 3)
    run_sender()
    died = _dies_at_the_first_move(monkeypatch)
    provider_id = aws.table.get_item(Key=recipient_key("tenant-a", batch_id, 1))["Item"]["provider_message_id"]
    payload = {"event": "message.delivered", "message_id": provider_id}
    with pytest.raises(Killed):
        reports.receive(parse_report(payload, "2026-12-02T00:00:00.000Z"), DynamoReportStore(),
                        datetime.now(timezone.utc))

    again = parse_report(payload, "2026-12-02T00:00:04.000Z")
    assert reports.receive(again, DynamoReportStore(), datetime.now(timezone.utc)) == "duplicate"
    assert died
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 2, "delivered": 1}
    assert view == view_from_every_message(get, aws, batch_id)


def test_an_expiry_run_that_died_before_counting_is_followed_by_one_that_leaves_the_counts_exact(
        post, get, run_sender, aws, monkeypatch):
    """The expirer expires a message and dies before its move (and before deleting the due item):
    the next run finds that message expired already (before: sent 1, expired 2 for expired 3)."""
    from test_promise_sender import Killed

    batch_id = bulk(post, 3)
    run_sender()
    died = _dies_at_the_first_move(monkeypatch)
    later = datetime.now(timezone.utc) + timedelta(hours=49)
    with pytest.raises(Killed):
        expire_due(later, lambda: 60.0, timedelta(hours=48))

    expire_due(later + timedelta(minutes=5), lambda: 60.0, timedelta(hours=48))

    assert died
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"expired": 3}
    assert view == view_from_every_message(get, aws, batch_id)
