"""POST /v1/messages/bulk (tuma.domain.bulk.accept_bulk): SayaSMS's `messages[{to, body}]` form and
the template form, their validation rules, the 202 answer, the packed jobs, and GET /v1/batches."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from conftest import ULID, api_event
from tuma.domain.bulk import MAX_MESSAGES, accept_bulk, bulk_response
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.jobs import parse_job
from tuma.domain.requests import CHUNK_SIZE, MAX_JOB_BYTES, MAX_JOB_MESSAGES

NOW = datetime(2026, 3, 13, 14, 30, 0, 5000, tzinfo=UTC)
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "layers/tuma/tuma/schemas/send_job.v1.json").read_text())
LIMIT = "at most 6 segments are allowed (918 GSM-7 characters, or 402 UCS-2 units)"

# Handlers that answer without adding a metric make Powertools' log_metrics warn: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def accept(payload):
    return accept_bulk(payload, "tenant-a", NOW)


def refused(payload) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        accept(payload)
    assert raised.value.status == 400
    return raised.value


def messages_form(*pairs, **fields) -> dict:
    return {"from": "MYSHOP", "messages": [{"to": to, "body": body} for to, body in pairs], **fields}


def template_form(template, *recipients, **fields) -> dict:
    return {"from": "MYSHOP", "template": template, "recipients": list(recipients), **fields}


# --- the two forms ---------------------------------------------------------------------------


def test_the_sayasms_messages_form_is_accepted_with_bat_ids_by_position():
    accepted = accept(messages_form(("+254712345678", "Hi Grace, your order #KE2041 is ready!"),
                                    ("0722111222", "Hi Peter, your order #KE2042 has shipped."),
                                    callback_url="https://yourapp.com/webhooks/sms"))
    response = bulk_response(accepted)

    batch_id = response["batch_id"]
    assert re.fullmatch(rf"bat_{ULID}", batch_id)
    assert response == {
        "status": "queued", "batch_id": batch_id, "provider": None, "total": 2, "accepted": 2, "segments": 2,
        "rejected": [],
        "message_ids": {"rule": f"the message at index i (0-based) has id {batch_id}_<i+1>",
                        "first": f"{batch_id}_1", "last": f"{batch_id}_2"},
        "created_at": "2026-03-13T14:30:00.005Z",
    }
    (job,) = accepted.jobs()
    jsonschema.Draft7Validator(SCHEMA).validate(job)
    assert "body" not in job  # personalised: each recipient carries its own
    assert job["recipients"] == [
        {"message_id": f"{batch_id}_1", "number": "+254712345678", "body": "Hi Grace, your order #KE2041 is ready!"},
        {"message_id": f"{batch_id}_2", "number": "+254722111222", "body": "Hi Peter, your order #KE2042 has shipped."}]
    assert job["callback_url"] == "https://yourapp.com/webhooks/sms"
    parsed = parse_job(json.dumps(job), "sqs-1")
    assert (parsed.request_id, parsed.from_api) == (batch_id, True)


def test_the_template_form_fills_each_recipients_variables():
    accepted = accept(template_form("Hi {name}, order {order} is ready",
                                    {"to": "0712345678", "vars": {"name": "Grace", "order": "KE2041"}},
                                    {"to": "0722111222", "vars": {"name": "Peter", "order": 2042}}))
    assert [(e.number, e.body) for e in accepted.entries] == [
        ("+254712345678", "Hi Grace, order KE2041 is ready"), ("+254722111222", "Hi Peter, order 2042 is ready")]


def test_a_template_without_placeholders_needs_no_vars():
    accepted = accept(template_form("Shop closes at 6 today", {"to": "0712345678"}))
    assert accepted.entries[0].body == "Shop closes at 6 today"


@pytest.mark.parametrize("provider", ["254sms", "sayasms"])
def test_provider_may_be_pinned_or_left_to_the_routing_policy(provider):
    assert accept(messages_form(("0712345678", "x"), provider=provider)).provider == provider
    assert accept(messages_form(("0712345678", "x"))).provider is None


# --- entries rejected one by one -------------------------------------------------------------


def test_bad_entries_are_rejected_by_index_and_the_rest_accepted():
    accepted = accept({"from": "MYSHOP", "messages": [
        {"to": "+254712345678", "body": "ok"},
        {"to": "+254202222222", "body": "landline"},
        {"to": "+254722111222", "body": ""},
        {"to": "+254733123456", "body": "x" * 919},
        "+254712345678",
        {"to": "+254712345678", "body": "ok", "priority": "high"},
        {"to": "+254712345678", "body": "ok"},           # same number, same text: a double
        {"to": "+254712345678", "body": "another text"},  # same number, other text: fine
    ]})
    response = bulk_response(accepted)

    assert (response["total"], response["accepted"]) == (8, 2)
    assert response["rejected"] == [
        {"index": 1, "to": "+254202222222", "reason": "number is not a mobile number"},
        {"index": 2, "to": "+254722111222", "reason": "body must be a non-empty string"},
        {"index": 3, "to": "+254733123456", "reason": f"body is 7 segments (GSM-7, 919 characters); {LIMIT}"},
        {"index": 4, "to": "(none)", "reason": "must be an object"},
        {"index": 5, "to": "+254712345678", "reason": "unknown field(s): priority"},
        {"index": 6, "to": "+254712345678", "reason": "duplicate of message 1"},
    ]
    assert [r["message_id"].rsplit("_", 1)[1] for r in accepted.jobs()[0]["recipients"]] == ["1", "8"]


def test_template_entries_are_rejected_by_index():
    accepted = accept(template_form("Hi {name}", {"to": "0712345678", "vars": {"name": "Grace"}},
                                    {"to": "0722111222", "vars": {}},
                                    {"to": "0733123456", "vars": ["Peter"]},
                                    {"to": "0710123456", "vars": {"name": "x" * 916}},
                                    {"to": "0711123456", "body": "Hi"}))
    assert [(r["index"], r["reason"]) for r in bulk_response(accepted)["rejected"]] == [
        (1, "template variable {name} is missing"),
        (2, "vars must be an object"),
        (3, f"body is 7 segments (GSM-7, 919 characters); {LIMIT}"),
        (4, "unknown field(s): body"),
    ]


def test_nothing_sendable_is_a_400_naming_each_entry():
    problem = refused(messages_form(("hello", "x"), ("+14155552671", "y")))
    assert problem.code == "no_sendable_message"
    assert problem.details == [{"field": "messages[0]", "reason": "number is not a phone number"},
                               {"field": "messages[1]", "reason": "number is not a Kenyan number (+254)"}]


# --- the request as a whole ------------------------------------------------------------------


@pytest.mark.parametrize("payload, field, reason", [
    ({"from": "MYSHOP"}, "messages", "is required"),
    ({"from": "MYSHOP", "messages": []}, "messages", "must be a non-empty array"),
    ({"from": "MYSHOP", "messages": {"to": "0712345678"}}, "messages", "must be an array"),
    ({"from": "MYSHOP", "template": "Hi {name}"}, "recipients", "is required"),
    (template_form("Hi {name}"), "recipients", "must be a non-empty array"),
    ({"from": "MYSHOP", "recipients": [{"to": "0712345678"}]}, "recipients",
     "goes with `template`; use `messages` without one"),
    ({**template_form("Hi", {"to": "0712345678"}), "messages": []}, "messages",
     "give either `messages` or `template` with `recipients`"),
    (template_form("", {"to": "0712345678"}), "template", "must be a non-empty string"),
    (template_form(42, {"to": "0712345678"}), "template", "must be a non-empty string"),
    (template_form("Hi {name", {"to": "0712345678"}), "template",
     "is not a valid template: expected '}' before end of string"),
    (template_form("Hi {0}", {"to": "0712345678"}), "template", "placeholder {0} must be a plain name like {name}"),
    (template_form("Hi {}", {"to": "0712345678"}), "template", "placeholder {} must be a plain name like {name}"),
    (template_form("Hi {a.b}", {"to": "0712345678"}), "template", "placeholder {a.b} must be a plain name like {name}"),
    (template_form("Hi {a!r}", {"to": "0712345678"}), "template", "placeholder {a} must be a plain name like {name}"),
    (template_form("Hi {a:>9}", {"to": "0712345678"}), "template", "placeholder {a} must be a plain name like {name}"),
    (messages_form(("0712345678", "x"), **{"from": "WAY-TOO-LONG"}), "from",
     "must be at most 11 letters and digits, or at most 15 digits"),
    ({"messages": [{"to": "0712345678", "body": "x"}]}, "from", "is required"),
    (messages_form(("0712345678", "x"), provider="twilio"), "provider", "must be one of 254sms, sayasms"),
    (messages_form(("0712345678", "x"), callback_url="not a url"), "callback_url",
     "must be an absolute http(s) URL: a lower-case http:// or https:// followed by printable ASCII with no spaces "
     "(percent-encode other characters, punycode a non-ASCII host)"),
    (messages_form(("0712345678", "x"), scheduled_at="2026-03-14T08:00:00"), "scheduled_at",
     "has no UTC offset, so the time is ambiguous: add Z for UTC or an offset such as +03:00 (Nairobi), "
     "e.g. 2026-03-14T09:00:00+03:00"),
    (messages_form(("0712345678", "x"), body="shared"), "body", "unknown field"),
])
def test_request_level_problems_are_a_400(payload, field, reason):
    problem = refused(payload)
    assert problem.code == "invalid_request"
    assert {"field": field, "reason": reason} in problem.details


@pytest.mark.parametrize("payload", [None, [], "messages", 7])
def test_a_body_that_is_not_a_json_object_is_refused(payload):
    assert refused(payload).message == "The request body must be a JSON object."


def test_more_than_10000_messages_is_a_413():
    with pytest.raises(TooLarge) as raised:
        accept({"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "x"}] * (MAX_MESSAGES + 1)})
    assert (raised.value.status, raised.value.code) == (413, "too_many_messages")


# --- storage and jobs ------------------------------------------------------------------------


def _many(count: int, body: str = "Hi") -> dict:
    return {"from": "MYSHOP", "messages": [{"to": f"+25471{n:07d}", "body": f"{body} {n}"} for n in range(count)]}


def test_10000_messages_make_ten_jobs_and_ten_chunks_each_within_the_limits():
    accepted = accept(_many(MAX_MESSAGES))
    jobs = accepted.jobs()
    chunks = accepted.chunks()

    assert len(jobs) == 10 and len(chunks) == 10
    assert [c.start for c in chunks] == [1 + n * CHUNK_SIZE for n in range(10)]
    validator = jsonschema.Draft7Validator(SCHEMA)
    ids = []
    for job in jobs:
        validator.validate(job)
        assert len(job["recipients"]) <= MAX_JOB_MESSAGES
        assert len(json.dumps(job, ensure_ascii=False).encode()) < 256 * 1024
        ids += [r["message_id"] for r in job["recipients"]]
    assert ids == [f"{accepted.request_id}_{n}" for n in range(1, MAX_JOB_MESSAGES * 10 + 1)]


def test_long_bodies_split_jobs_by_size_not_only_by_count():
    accepted = accept(_many(1000, body="x" * 900))
    jobs = accepted.jobs()
    assert len(jobs) > 1
    for job in jobs:
        # As the queue will carry it (tuma.store.queue.enqueue): compact JSON.
        assert len(json.dumps(job["recipients"], separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_JOB_BYTES
        assert len(json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()) < 256 * 1024
    assert sum(len(j["recipients"]) for j in jobs) == 1000


# --- the handler, the sender and GET /v1/batches ---------------------------------------------


def test_bulk_post_queues_its_jobs_and_the_batch_route_counts_progress(functions, context, aws, simsaya, sim254):
    payload = {"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "Hi Grace"},
                                              {"to": "0722111222", "body": "Hi Peter"},
                                              {"to": "12345", "body": "Hi nobody"}]}
    response = functions("bulk").handler(api_event("POST", "/v1/messages/bulk", body=payload), context)
    assert response["statusCode"] == 202
    batch_id = json.loads(response["body"])["batch_id"]

    def batch() -> dict:
        event = api_event("GET", f"/v1/batches/{batch_id}", resource="/v1/batches/{batch_id}",
                          path_parameters={"batch_id": batch_id})
        answer = functions("status").handler(event, context)
        assert answer["statusCode"] == 200
        return json.loads(answer["body"])

    before = batch()
    assert (before["total"], before["accepted"], before["counts"], before["done"]) == (
        3, 2, {"queued": 2, "rejected": 1}, False)

    (message,) = aws.receive(aws.queue_url)
    assert functions("sender").handler({"Records": [{
        "messageId": "m1", "receiptHandle": "r1", "body": message["Body"], "attributes": {},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}]}, context) == {
        "batchItemFailures": []}

    after = batch()
    assert (after["counts"], after["done"]) == ({"sent": 2, "rejected": 1}, True)
    (call,) = simsaya.requests()
    assert call["path"] == "/v1/messages/bulk"

    # Each message of the batch answers on its own id.
    event = api_event("GET", f"/v1/messages/{batch_id}_2", resource="/v1/messages/{message_id}",
                      path_parameters={"message_id": f"{batch_id}_2"})
    message_view = json.loads(functions("status").handler(event, context)["body"])
    assert (message_view["number"], message_view["status"]) == ("+254722111222", "sent")


def test_every_rejected_bulk_entry_answers_get(functions, context, aws):
    payload = {"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "ok"}, {"to": 712345678, "body": ""}]}
    response = functions("bulk").handler(api_event("POST", "/v1/messages/bulk", body=payload), context)
    batch_id = json.loads(response["body"])["batch_id"]
    event = api_event("GET", f"/v1/messages/{batch_id}_2", resource="/v1/messages/{message_id}",
                      path_parameters={"message_id": f"{batch_id}_2"})
    answer = functions("status").handler(event, context)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["status"] == "rejected"
