"""Segments and cost through the handlers (moto, the simulators): POST /v1/messages/estimate, the
`encoding`/`segments` of the 202s and of GET, what the chunk items store, the rates, and the
`total_cost`/`estimated_cost` of a request and of a batch."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import api_event, sqs_event, utc
from tuma import settings
from tuma.domain import costs
from tuma.domain.jobs import parse_job
from tuma.store.sending import MessageStore
from tuma.store.table import message_pk, recipient_key

# Handlers that answer without adding a metric make Powertools' log_metrics warn: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

EMOJI = "\U0001F600"
SWAHILI = "Habari yako? Karibu sana, tutaonana kesho."
LIMIT = "at most 6 segments are allowed (918 GSM-7 characters, or 402 UCS-2 units)"


def answer(response: dict) -> tuple[int, dict]:
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def post(functions, context, aws):
    def call(path: str, body, tenant: str = "tenant-a") -> tuple[int, dict]:
        module = functions("bulk" if path.endswith("/bulk") else "send")
        return answer(module.handler(api_event("POST", path, body=body, tenant=tenant), context))
    return call


@pytest.fixture
def get(functions, context, aws):
    def call(path: str) -> dict:
        kind, name = path.rsplit("/", 1)
        parameter = "batch_id" if kind.endswith("batches") else "message_id"
        event = api_event("GET", path, resource=f"{kind}/{{{parameter}}}", path_parameters={parameter: name})
        code, body = answer(functions("status").handler(event, context))
        assert code == 200, body
        return body
    return call


@pytest.fixture
def run_sender(functions, context, aws, simsaya, sim254):
    """Send every job on the queue through the sender handler, with the simulators as providers."""
    def run() -> None:
        bodies = [m["Body"] for m in aws.receive(aws.queue_url)]
        assert bodies
        assert functions("sender").handler(sqs_event(bodies), context) == {"batchItemFailures": []}
    return run


def single(body: str, to=("+254712345678",), **fields) -> dict:
    return {"to": list(to), "from": "TUMA", "body": body, **fields}


# --- estimate, accept and GET agree ----------------------------------------------------------

AGREEING = [
    # (body, encoding, characters, units, segments)
    ("Hello from Tuma", "GSM-7", 15, 15, 1),
    ("Bei: €5 {leo tu}", "GSM-7", 16, 19, 1),
    (SWAHILI, "GSM-7", 42, 42, 1),
    (f"Asante {EMOJI}", "UCS-2", 8, 9, 1),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 305, 306, 3),
    ("a" * 918, "GSM-7", 918, 918, 6),
    ("ê" * 402, "UCS-2", 402, 402, 6),
]


@pytest.mark.parametrize("body, encoding, characters, units, segments", AGREEING,
                         ids=["plain", "euro-brace", "swahili", "emoji", "euro-at-boundary", "918", "402-ucs2"])
def test_estimate_accept_and_get_agree(post, get, aws, body, encoding, characters, units, segments):
    code, estimate = post("/v1/messages/estimate", single(body))
    assert code == 200
    assert (estimate["encoding"], estimate["characters"], estimate["units"], estimate["segments"]) == (
        encoding, characters, units, segments)
    assert aws.items() == [] and aws.receive(aws.queue_url) == []  # an estimate stores and queues nothing

    code, accepted = post("/v1/messages", single(body))
    assert code == 202
    assert (accepted["encoding"], accepted["segments"]) == (encoding, segments)
    message = get(f"/v1/messages/{accepted['message_id']}_1")
    assert (message["encoding"], message["segments"]) == (encoding, segments)


def test_an_estimate_names_sendable_and_rejected_recipients_and_the_cost_per_provider(post, aws, simsaya, sim254):
    code, body = post("/v1/messages/estimate", single("x" * 161, to=["0712345678", "+254722111222", "12345",
                                                                      "712345678"], provider="254sms"))
    assert code == 200
    assert body == {
        "provider": "254sms", "encoding": "GSM-7", "characters": 161, "units": 161, "segments": 2,
        "recipients": 4, "sendable": 2,
        "rejected": [{"index": 2, "number": "12345", "reason": "number is not a valid phone number"},
                     {"index": 3, "number": "+254712345678", "reason": "duplicate of message 1"}],
        "cost_per_segment": {"254sms": "KES 0.80", "sayasms": "KES 0.90"},
        "estimated_cost": {"254sms": "KES 3.20", "sayasms": "KES 3.60"},  # 2 segments × rate × 2 recipients
    }
    assert aws.items() == [] and aws.receive(aws.queue_url) == []
    assert simsaya.requests() == [] and sim254.requests() == []  # no provider is asked


def test_the_rates_come_from_the_template_parameters(post, monkeypatch):
    monkeypatch.setenv("SMS254_COST_PER_SEGMENT", "0.65")
    monkeypatch.setenv("SAYASMS_COST_PER_SEGMENT", "1")
    _, body = post("/v1/messages/estimate", single(f"{EMOJI} " * 30))  # 90 UTF-16 units: 2 segments
    assert body["estimated_cost"] == {"254sms": "KES 1.30", "sayasms": "KES 2.00"}


REFUSED = [
    single("a" * 919),
    single(EMOJI * 199),
    single("{}" * 300),
    single(""),
    single("Hi", to=["+14155552671", "hello"]),
    single("Hi", to="0712345678"),
    single("Hi", provider="twilio"),
    {**single("Hi"), "colour": "red"},
    {"to": ["+254712345678"], "from": "TUMA"},
    single("Hi", to=[f"+25471{n:07d}" for n in range(1001)]),
    "{",
    None,
]


@pytest.mark.parametrize("payload", REFUSED, ids=[
    "919-chars", "199-emoji", "600-braces", "empty-body", "nothing-sendable", "to-not-array", "bad-provider",
    "unknown-field", "no-body", "too-many", "bad-json", "no-json"])
def test_an_estimate_refuses_exactly_what_a_send_refuses(post, aws, payload):
    estimate = post("/v1/messages/estimate", payload)
    send = post("/v1/messages", payload)
    assert 400 <= estimate[0] < 500
    assert estimate == send
    assert aws.items() == [] and aws.receive(aws.queue_url) == []


def test_the_refusal_of_a_long_body_names_the_field_the_count_and_the_limit(post):
    code, body = post("/v1/messages/estimate", single(EMOJI * 199))
    assert code == 400
    assert body["error"]["details"] == [
        {"field": "body", "reason": f"is 7 segments (UCS-2, 199 characters); {LIMIT}"}]
    assert body["error"]["message"] == f"`body` is 7 segments (UCS-2, 199 characters); {LIMIT}."


def test_a_long_bulk_body_is_rejected_by_its_index(post):
    code, body = post("/v1/messages/bulk", {"from": "SHOP", "messages": [
        {"to": "0712345678", "body": "ok"}, {"to": "0722111222", "body": "€" * 459}]})
    assert code == 202
    assert body["rejected"] == [{"index": 1, "to": "0722111222",
                                 "reason": f"body is 7 segments (GSM-7, 459 characters); {LIMIT}"}]


# --- settings.rates() ------------------------------------------------------------------------


def test_rates_default_to_the_seed_prices():
    assert settings.rates() == {"254sms": Decimal("0.80"), "sayasms": Decimal("0.90")}


@pytest.mark.parametrize("value", ["abc", "-0.10", "NaN", "Infinity", ""])
def test_a_bad_rate_is_a_configuration_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("SAYASMS_COST_PER_SEGMENT", value)
    with pytest.raises(RuntimeError, match="SAYASMS_COST_PER_SEGMENT"):
        settings.rates()


# --- what is stored ----------------------------------------------------------------------------


def test_a_send_stores_the_segments_and_encoding_of_every_position(post, aws):
    code, body = post("/v1/messages", single(EMOJI * 36, to=["0712345678", "0722111222", "12345"]))
    assert (code, body["encoding"], body["segments"]) == (202, "UCS-2", 2)
    chunk = aws.item(message_pk("tenant-a", body["message_id"]), "C#000001")
    assert (chunk["segments"], chunk["encodings"]) == ([2, 2, 2], "UUU")


def test_a_bulk_send_stores_each_messages_own_segments_and_totals_them(post, get, aws):
    code, body = post("/v1/messages/bulk", {"from": "SHOP", "messages": [
        {"to": "0712345678", "body": "Hi Grace"},
        {"to": "0722111222", "body": f"Habari {EMOJI}"},
        {"to": "0733123456", "body": "x" * 161},
        {"to": "0710123456", "body": ""},
        {"to": "12345", "body": "€" * 100},
    ]})
    assert code == 202
    assert body["segments"] == 1 + 1 + 2  # the accepted messages only
    batch_id = body["batch_id"]
    chunk = aws.item(message_pk("tenant-a", batch_id), "C#000001")
    assert (chunk["segments"], chunk["encodings"]) == ([1, 1, 2, 0, 2], "GUG-G")

    shown = [get(f"/v1/messages/{batch_id}_{n}") for n in range(1, 6)]
    assert [(m.get("encoding"), m.get("segments")) for m in shown] == [
        ("GSM-7", 1), ("UCS-2", 1), ("GSM-7", 2), (None, None), ("GSM-7", 2)]
    assert [m["status"] for m in shown] == ["queued"] * 3 + ["rejected"] * 2


def test_a_producers_request_gets_segments_too(aws, get):
    job = parse_job(json.dumps({"version": 1, "tenant_id": "tenant-a", "provider": "sayasms", "from": "SHOP",
                                "recipients": [{"number": "0712345678", "body": "Bei {mpya}"},
                                               {"number": "0722111222", "body": EMOJI * 40}]}), "sqs-1")
    MessageStore().register(job, utc(2026, 3, 13, 14, 30))
    chunk = aws.item(message_pk("tenant-a", job.request_id), "C#000001")
    assert (chunk["segments"], chunk["encodings"]) == ([1, 2], "GU")
    assert get(f"/v1/messages/{job.request_id}_2")["encoding"] == "UCS-2"


def test_a_chunk_stored_before_segments_existed_still_answers_get(post, get, aws):
    _, body = post("/v1/messages", single("Hello"))
    pk = message_pk("tenant-a", body["message_id"])
    aws.table.update_item(Key={"pk": pk, "sk": "C#000001"}, UpdateExpression="REMOVE #g, encodings",
                          ExpressionAttributeNames={"#g": "segments"})
    message = get(f"/v1/messages/{body['message_id']}_1")
    assert "encoding" not in message and "segments" not in message
    assert get(f"/v1/messages/{body['message_id']}")["estimated_cost"] == "KES 0.00"


# --- cost totals -------------------------------------------------------------------------------


def test_a_requests_cost_is_estimated_until_sent_then_totalled_from_sayasms(post, get, run_sender):
    _, body = post("/v1/messages", single("x" * 200, to=["0712345678", "0722111222", "12345"]))
    request_id = body["message_id"]

    before = get(f"/v1/messages/{request_id}")
    assert (before["total_cost"], before["estimated_cost"]) == ("KES 0.00", "KES 3.60")  # 2 × 2 × 0.90

    run_sender()
    after = get(f"/v1/messages/{request_id}")
    assert [r.get("cost") for r in after["recipients"]] == ["KES 1.80", "KES 1.80", None]  # the simulator's
    assert (after["total_cost"], after["estimated_cost"]) == ("KES 3.60", "KES 0.00")


def test_a_254sms_request_is_estimated_at_its_rate(post, get):
    _, body = post("/v1/messages", single(EMOJI * 36, to=["0712345678"], provider="254sms"))
    assert get(f"/v1/messages/{body['message_id']}")["estimated_cost"] == "KES 1.60"  # 2 × 0.80


def test_an_estimated_cost_written_by_the_sender_is_shown_and_totalled(post, get, aws):
    _, body = post("/v1/messages", single("Hello", to=["0712345678", "0722111222"], provider="254sms"))
    request_id = body["message_id"]
    aws.table.put_item(Item={**recipient_key("tenant-a", request_id, 1), "status": "sent", "provider": "254sms",
                             "cost": "KES 0.80", "cost_estimated": True, "history": []})
    message = get(f"/v1/messages/{request_id}_1")
    assert (message["cost"], message["cost_estimated"]) == ("KES 0.80", True)
    view = get(f"/v1/messages/{request_id}")
    assert (view["total_cost"], view["estimated_cost"]) == ("KES 0.80", "KES 0.80")  # _2 is still queued


def test_a_batch_cost_is_estimated_until_sent_then_totalled(post, get, run_sender):
    _, body = post("/v1/messages/bulk", {"from": "SHOP", "messages": [
        {"to": "0712345678", "body": "Hi Grace"},
        {"to": "0722111222", "body": "y" * 400},
        {"to": "12345", "body": "Hi nobody"},
    ]})
    batch_id = body["batch_id"]

    before = get(f"/v1/batches/{batch_id}")
    assert (before["total_cost"], before["estimated_cost"]) == ("KES 0.00", "KES 3.60")  # (1 + 3) × 0.90
    assert before["counts"] == {"queued": 2, "rejected": 1}

    run_sender()
    after = get(f"/v1/batches/{batch_id}")
    assert (after["total_cost"], after["estimated_cost"]) == ("KES 3.60", "KES 0.00")
    assert (after["counts"], after["done"]) == ({"sent": 2, "rejected": 1}, True)


def test_a_batch_message_being_sent_is_still_estimated(post, get, aws):
    _, body = post("/v1/messages/bulk", {"from": "SHOP", "provider": "254sms", "messages": [
        {"to": "0712345678", "body": "x" * 161}, {"to": "0722111222", "body": "Hi"}, {"to": "0733123456", "body": "Yo"}]})
    pk = message_pk("tenant-a", body["batch_id"])
    # Items written here, not by the sender, so not in the batch's counters: read as a batch
    # accepted before the counters is (every message; tuma.store.progress.usable).
    aws.table.update_item(Key={"pk": pk, "sk": "REQ"}, UpdateExpression="REMOVE #g",
                          ExpressionAttributeNames={"#g": "segments"})
    at = lambda n: recipient_key("tenant-a", body["batch_id"], n)  # noqa: E731
    aws.table.put_item(Item={**at(1), "status": "sending", "history": []})
    aws.table.put_item(Item={**at(2), "status": "sent", "cost": "KES 0.80", "cost_estimated": True, "history": []})
    aws.table.put_item(Item={**at(3), "status": "failed", "history": []})
    view = get(f"/v1/batches/{body['batch_id']}")
    assert (view["total_cost"], view["estimated_cost"]) == ("KES 0.80", "KES 1.60")  # _1: 2 segments × 0.80
    assert view["counts"] == {"sending": 1, "sent": 1, "failed": 1}


# --- the totals themselves ---------------------------------------------------------------------


def test_totals_add_readable_costs_and_estimate_only_unsent_messages():
    messages = [("delivered", "KES 0.90", 1), ("sent", "KES 1,000.10", 3), ("queued", None, 2),
                ("sending", None, 1), ("scheduled", None, 4), ("failed", None, 5), ("unknown", None, 1),
                ("rejected", None, 1), ("sent", "gratis", 1), ("sent", Decimal("0.5"), 1)]
    assert costs.totals(messages, Decimal("0.90")) == {"total_cost": "KES 1001.50", "estimated_cost": "KES 6.30"}


def test_a_provider_without_a_rate_is_estimated_at_the_default_providers():
    rates = {"254sms": Decimal("0.80"), "sayasms": Decimal("0.90")}
    assert costs.rate_for("254sms", rates, "sayasms") == Decimal("0.80")
    assert costs.rate_for("auto", rates, "sayasms") == Decimal("0.90")


def test_the_sample_estimate_event_answers(functions, context, aws):
    event = json.loads((Path(__file__).resolve().parents[2] / "events/send_estimate.json").read_text())
    code, body = answer(functions("send").handler(event, context))
    assert (code, body["units"], body["estimated_cost"]["sayasms"]) == (200, 24, "KES 1.80")


# --- the sender prices what 254sms took ------------------------------------------------------


def test_the_estimator_prices_a_body_at_the_providers_rate():
    estimate = costs.estimator({"254sms": Decimal("0.80"), "sayasms": Decimal("0.90")})
    assert estimate("254sms", "x" * 161) == "KES 1.60"
    assert estimate("sayasms", EMOJI * 36) == "KES 1.80"
    assert estimate("twilio", "Hi") is None


def test_a_254sms_message_sent_carries_an_estimated_cost_and_a_failed_one_none(post, get, aws, run_sender, sim254):
    _, sent = post("/v1/messages", single("x" * 161, to=["0712345678", "0722111222"], provider="254sms"))
    run_sender()
    view = get(f"/v1/messages/{sent['message_id']}")
    assert [(r["status"], r["cost"], r["cost_estimated"]) for r in view["recipients"]] == [
        ("sent", "KES 1.60", True)] * 2  # 2 segments × KES 0.80
    assert (view["total_cost"], view["estimated_cost"]) == ("KES 3.20", "KES 0.00")

    sim254.faults({"error": "X002"})
    _, refused = post("/v1/messages", single("Hello", provider="254sms"))
    run_sender()
    (message,) = get(f"/v1/messages/{refused['message_id']}")["recipients"]
    assert (message["status"], message.get("cost"), message.get("cost_estimated")) == ("failed", None, None)
