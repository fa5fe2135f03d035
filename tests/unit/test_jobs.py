"""The send job contract (tuma.domain.jobs.parse_job and tuma/schemas/send_job.v1.json): jobs made
by Tuma's API, and jobs other services (producers) put straight on the queue."""

from __future__ import annotations

import copy
import json
import re

import pytest

from tuma.domain import ids
from tuma.domain.jobs import JobRecipient, MalformedJob, SendJob, parse_job, producer_request_id

REQUEST_ID = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4"
OTHER_REQUEST_ID = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT5"
SQS_ID = "059f36b4-87a3-44ab-83d2-661975830a7d"
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
JOB = {
    "version": 1,
    "origin": "api",
    "tenant_id": "tenant-a",
    "request_id": REQUEST_ID,
    "provider": "sayasms",
    "from": "TUMA",
    "body": "Hello from Tuma",
    "callback_url": "https://example.com/hooks/sms",
    "recipients": [
        {"message_id": f"{REQUEST_ID}_1", "number": "+254712345678"},
        {"message_id": f"{REQUEST_ID}_3", "number": "+254722111222"},
    ],
}
PRODUCER_JOB = {
    "version": 1,
    "tenant_id": "tenant-a",
    "provider": "254sms",
    "from": "SHOP",
    "recipients": [
        {"number": "0712345678", "body": "Hi Grace, order KE2041 is ready"},
        {"number": "254722111222", "body": "Hi Peter, order KE2042 has shipped"},
    ],
}


def job(base=JOB, **changes) -> dict:
    document = copy.deepcopy(base)
    for name, value in changes.items():
        if value is ...:
            document.pop(name)
        else:
            document[name] = value
    return document


def parse(document, queue_message_id: str = SQS_ID) -> SendJob:
    return parse_job(json.dumps(document), queue_message_id)


# --- jobs from the API -----------------------------------------------------------------------


def test_an_api_job_parses_into_a_send_job():
    assert parse(JOB) == SendJob(
        tenant_id="tenant-a", request_id=REQUEST_ID, provider="sayasms", sender="TUMA",
        callback_url="https://example.com/hooks/sms", from_api=True,
        recipients=(JobRecipient(f"{REQUEST_ID}_1", "+254712345678", "Hello from Tuma"),
                    JobRecipient(f"{REQUEST_ID}_3", "+254722111222", "Hello from Tuma")))


def test_recipient_index_comes_from_its_message_id():
    assert [r.index for r in parse(JOB).recipients] == [1, 3]


def test_callback_url_is_optional():
    assert parse(job(callback_url=...)).callback_url is None


@pytest.mark.parametrize("provider", ["254sms", "sayasms"])
def test_both_providers_are_valid(provider):
    assert parse(job(provider=provider)).provider == provider


def test_a_job_without_a_provider_is_left_to_the_routing_policy():
    assert parse(job(provider=...)).provider is None


def test_a_batch_job_keeps_its_bat_ids():
    batch = "bat_01HX4ZQ9GKD2VP7C9XR3MNBVT4"
    parsed = parse(job(request_id=batch, recipients=[{"message_id": f"{batch}_7", "number": "+254712345678"}]))
    assert (parsed.request_id, parsed.recipients[0].message_id) == (batch, f"{batch}_7")


def test_a_job_of_1000_recipients_is_valid():
    recipients = [{"message_id": f"{REQUEST_ID}_{n}", "number": f"+25471{n:07d}"} for n in range(1, 1001)]
    assert len(parse(job(recipients=recipients)).recipients) == 1000


def test_a_recipient_body_overrides_the_shared_one():
    parsed = parse(job(recipients=[{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678", "body": "Own"},
                                   {"message_id": f"{REQUEST_ID}_2", "number": "+254722111222"}]))
    assert [r.body for r in parsed.recipients] == ["Own", "Hello from Tuma"]


# --- jobs from producers ---------------------------------------------------------------------


def test_a_producer_job_without_ids_gets_ids_derived_from_its_content():
    parsed = parse(PRODUCER_JOB)

    assert not parsed.from_api
    assert re.fullmatch(rf"msg_{ULID}", parsed.request_id)
    assert parsed.request_id == producer_request_id(PRODUCER_JOB)
    assert [r.message_id for r in parsed.recipients] == [f"{parsed.request_id}_1", f"{parsed.request_id}_2"]
    assert [(r.number, r.body) for r in parsed.recipients] == [
        ("+254712345678", "Hi Grace, order KE2041 is ready"), ("+254722111222", "Hi Peter, order KE2042 has shipped")]


def test_a_redelivered_producer_job_gets_the_same_ids_and_another_job_other_ids():
    # A redrive or a retried send_message gives the same job another SQS message id.
    assert parse(PRODUCER_JOB, SQS_ID) == parse(PRODUCER_JOB, "another-message")
    assert parse(PRODUCER_JOB).request_id != parse(job(PRODUCER_JOB, **{"from": "OTHER"})).request_id
    keyed = job(PRODUCER_JOB, idempotency_key="order-KE2041")
    assert parse(keyed).request_id == parse(job(keyed, **{"from": "OTHER"})).request_id != parse(PRODUCER_JOB).request_id


def test_a_producer_may_name_its_own_request_id():
    parsed = parse(job(PRODUCER_JOB, request_id=REQUEST_ID))
    assert parsed.request_id == REQUEST_ID
    assert parsed.recipients[1].message_id == f"{REQUEST_ID}_2"


@pytest.mark.parametrize("written", ["0712345678", "712345678", "254712345678", "+254712345678", "0712 345 678"])
def test_a_producers_numbers_in_any_kenyan_form_are_normalised(written):
    parsed = parse(job(PRODUCER_JOB, recipients=[{"number": written, "body": "Hi"}]))
    assert parsed.recipients[0].number == "+254712345678"
    assert parsed.recipients[0].problem is None


def test_a_producers_bad_number_is_a_rejected_recipient_not_a_malformed_job():
    parsed = parse(job(PRODUCER_JOB, recipients=[{"number": "0712345678", "body": "Hi"},
                                                 {"number": "+254202222222", "body": "Hi"},
                                                 {"number": "hello", "body": "Hi"}]))
    assert [r.problem for r in parsed.recipients] == [
        None, "number is not a mobile number", "number is not a phone number"]
    assert parsed.recipients[2].number == "hello"
    assert [r.index for r in parsed.sendable] == [1]


def test_a_recipient_without_any_body_is_malformed():
    with pytest.raises(MalformedJob, match=r"recipients\[1\] has no body"):
        parse(job(PRODUCER_JOB, recipients=[{"number": "0712345678", "body": "Hi"}, {"number": "0722111222"}]))


# --- malformed -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "not json", "{", "{'version': 1}", None, b"\xff\xfe"])
def test_text_that_is_not_json_is_malformed(text):
    with pytest.raises(MalformedJob, match="^not JSON: "):
        parse_job(text, SQS_ID)


def _recipient(**changes) -> list[dict]:
    return [{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678", **changes}]


SCHEMA_VIOLATIONS = {
    "a JSON array": [JOB],
    "a JSON string": "job",
    "no version": job(version=...),
    "version 2": job(version=2),
    "version as text": job(version="1"),
    "unknown origin": job(origin="lambda"),
    "no tenant": job(tenant_id=...),
    "empty tenant": job(tenant_id=""),
    "tenant too long": job(tenant_id="t" * 129),
    "tenant with a #": job(tenant_id="a#M#b"),
    "request id not a ULID": job(request_id="msg_123"),
    "request id with a recipient suffix": job(request_id=f"{REQUEST_ID}_1"),
    "request id of another kind": job(request_id="req_01HX4ZQ9GKD2VP7C9XR3MNBVT4"),
    "unknown provider": job(provider="twilio"),
    "no from": job(**{"from": ...}),
    "from of 12 letters": job(**{"from": "ABCDEFGHIJKL"}),
    "from of 16 digits": job(**{"from": "1" * 16}),
    "from with a blank": job(**{"from": "MY SHOP"}),
    "empty body": job(body=""),
    "body of 919 characters": job(body="a" * 919),
    "body not a string": job(body=42),
    "callback_url not http": job(callback_url="ftp://example.com"),
    "an unknown field": job(priority="high"),
    "no recipients": job(recipients=...),
    "empty recipients": job(recipients=[]),
    "1001 recipients": job(recipients=[{"message_id": f"{REQUEST_ID}_{n}", "number": "+254712345678"}
                                       for n in range(1, 1002)]),
    "recipient without number": job(recipients=[{"message_id": f"{REQUEST_ID}_1"}]),
    "recipient number empty": job(recipients=_recipient(number="")),
    "recipient number of 33 characters": job(recipients=_recipient(number="+254712345678" + " " * 20)),
    "recipient number not a string": job(recipients=_recipient(number=254712345678)),
    "recipient message_id without index": job(recipients=_recipient(message_id=REQUEST_ID)),
    "recipient index 0": job(recipients=_recipient(message_id=f"{REQUEST_ID}_0")),
    "recipient empty body": job(recipients=_recipient(body="")),
    "recipient body of 919 characters": job(recipients=_recipient(body="a" * 919)),
    "recipient with an unknown field": job(recipients=_recipient(status="queued")),
    "recipient not an object": job(recipients=["+254712345678"]),
}


@pytest.mark.parametrize("document", SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys())
def test_a_job_that_breaks_the_schema_is_malformed(document):
    with pytest.raises(MalformedJob, match="^does not match send_job.v1: "):
        parse(document)


def test_the_reason_names_the_rule_without_echoing_the_phone_number():
    with pytest.raises(MalformedJob) as raised:
        parse(job(recipients=_recipient(number="0798765432" * 4)))
    assert "number" in str(raised.value)
    assert "798765432" not in str(raised.value)


def test_a_recipient_id_of_another_request_is_malformed():
    document = job(recipients=[{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678"},
                               {"message_id": f"{OTHER_REQUEST_ID}_2", "number": "+254722111222"}])
    with pytest.raises(MalformedJob, match=r"recipients\[1\]\.message_id does not belong to request"):
        parse(document)


def test_recipient_ids_without_a_request_id_are_malformed():
    # The request id is then derived from the queue message, and the given ids are not its own.
    with pytest.raises(MalformedJob, match="does not belong"):
        parse(job(request_id=...))


def test_two_recipients_with_one_message_id_are_malformed():
    document = job(recipients=[{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678"},
                               {"message_id": f"{REQUEST_ID}_1", "number": "+254722111222"}])
    with pytest.raises(MalformedJob, match="two recipients share a message_id"):
        parse(document)


def test_a_producer_id_colliding_with_a_derived_one_is_malformed():
    # Recipient 2 takes the derived id of position 1 (`<request>_1`), recipient 1 gets it by position.
    document = job(PRODUCER_JOB, request_id=REQUEST_ID,
                   recipients=[{"number": "0712345678", "body": "a"},
                               {"number": "0722111222", "body": "b", "message_id": f"{REQUEST_ID}_1"}])
    with pytest.raises(MalformedJob, match="share a message_id"):
        parse(document)


def test_derived_request_ids_look_like_request_ids():
    for seed in ("a", "b", SQS_ID, "x" * 200):
        assert ids.parse_message_id(ids.derived_request_id(seed)) == (ids.derived_request_id(seed), None)


def test_a_producers_body_over_the_segment_limit_is_rejected_for_that_recipient_only():
    document = {"version": 1, "tenant_id": "tenant-a", "from": "SHOP",
                "recipients": [{"number": "0712345678", "body": "{" * 460}, {"number": "0722111222", "body": "Hi"}]}
    long_one, short_one = parse_job(json.dumps(document), "sqs-1").recipients
    assert long_one.problem == ("body is 7 segments (GSM-7, 460 characters); at most 6 segments are allowed "
                                "(918 GSM-7 characters, or 402 UCS-2 units)")
    assert short_one.problem is None
