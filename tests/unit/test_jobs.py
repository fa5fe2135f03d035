"""The send job contract (tuma.domain.jobs.parse_job and tuma/schemas/send_job.v1.json)."""

from __future__ import annotations

import copy
import json

import pytest

from tuma.domain.jobs import JobRecipient, MalformedJob, SendJob, parse_job

REQUEST_ID = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4"
OTHER_REQUEST_ID = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT5"
JOB = {
    "version": 1,
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


def job(**changes) -> dict:
    document = copy.deepcopy(JOB)
    for name, value in changes.items():
        if value is ...:
            document.pop(name)
        else:
            document[name] = value
    return document


def test_a_valid_job_parses_into_a_send_job():
    assert parse_job(json.dumps(JOB)) == SendJob(
        tenant_id="tenant-a", request_id=REQUEST_ID, provider="sayasms", sender="TUMA", body="Hello from Tuma",
        callback_url="https://example.com/hooks/sms",
        recipients=(JobRecipient(f"{REQUEST_ID}_1", "+254712345678"), JobRecipient(f"{REQUEST_ID}_3", "+254722111222")))


def test_recipient_index_comes_from_its_message_id():
    parsed = parse_job(json.dumps(JOB))
    assert [r.index for r in parsed.recipients] == [1, 3]


def test_callback_url_is_optional():
    assert parse_job(json.dumps(job(callback_url=...))).callback_url is None


@pytest.mark.parametrize("provider", ["254sms", "sayasms"])
def test_both_providers_are_valid(provider):
    assert parse_job(json.dumps(job(provider=provider))).provider == provider


def test_a_job_of_1000_recipients_is_valid():
    recipients = [{"message_id": f"{REQUEST_ID}_{n}", "number": f"+25471{n:07d}"} for n in range(1, 1001)]
    assert len(parse_job(json.dumps(job(recipients=recipients))).recipients) == 1000


@pytest.mark.parametrize("text", ["", "not json", "{", "{'version': 1}", None, b"\xff\xfe"])
def test_text_that_is_not_json_is_malformed(text):
    with pytest.raises(MalformedJob, match="^not JSON: "):
        parse_job(text)


def _recipient(**changes) -> list[dict]:
    return [{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678", **changes}]


SCHEMA_VIOLATIONS = {
    "a JSON array": [JOB],
    "a JSON string": "job",
    "no version": job(version=...),
    "version 2": job(version=2),
    "version as text": job(version="1"),
    "no tenant": job(tenant_id=...),
    "empty tenant": job(tenant_id=""),
    "tenant too long": job(tenant_id="t" * 129),
    "no request id": job(request_id=...),
    "request id not a ULID": job(request_id="msg_123"),
    "request id with a recipient suffix": job(request_id=f"{REQUEST_ID}_1"),
    "unknown provider": job(provider="twilio"),
    "no provider": job(provider=...),
    "no from": job(**{"from": ...}),
    "from of 12 letters": job(**{"from": "ABCDEFGHIJKL"}),
    "from of 16 digits": job(**{"from": "1" * 16}),
    "from with a blank": job(**{"from": "MY SHOP"}),
    "no body": job(body=...),
    "empty body": job(body=""),
    "body of 919 characters": job(body="a" * 919),
    "body not a string": job(body=42),
    "callback_url not http": job(callback_url="ftp://example.com"),
    "an unknown field": job(priority="high"),
    "no recipients": job(recipients=...),
    "empty recipients": job(recipients=[]),
    "1001 recipients": job(recipients=[{"message_id": f"{REQUEST_ID}_{n}", "number": "+254712345678"}
                                       for n in range(1, 1002)]),
    "recipient number not E.164": job(recipients=_recipient(number="0712345678")),
    "recipient number without +": job(recipients=_recipient(number="254712345678")),
    "recipient number not Kenyan": job(recipients=_recipient(number="+14155552671")),
    "recipient without number": job(recipients=[{"message_id": f"{REQUEST_ID}_1"}]),
    "recipient without message_id": job(recipients=[{"number": "+254712345678"}]),
    "recipient message_id without index": job(recipients=_recipient(message_id=REQUEST_ID)),
    "recipient index 0": job(recipients=_recipient(message_id=f"{REQUEST_ID}_0")),
    "recipient with an unknown field": job(recipients=_recipient(status="queued")),
    "recipient not an object": job(recipients=["+254712345678"]),
}


@pytest.mark.parametrize("document", SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys())
def test_a_job_that_breaks_the_schema_is_malformed(document):
    with pytest.raises(MalformedJob, match="^does not match send_job.v1: "):
        parse_job(json.dumps(document))


def test_the_reason_names_the_rule_without_echoing_the_phone_number():
    with pytest.raises(MalformedJob) as raised:
        parse_job(json.dumps(job(recipients=_recipient(number="0798765432"))))
    assert "number" in str(raised.value)
    assert "0798765432" not in str(raised.value)
    assert "798765432" not in str(raised.value)


def test_a_recipient_id_of_another_request_is_malformed():
    document = job(recipients=[{"message_id": f"{REQUEST_ID}_1", "number": "+254712345678"},
                               {"message_id": f"{OTHER_REQUEST_ID}_2", "number": "+254722111222"}])
    with pytest.raises(MalformedJob, match="does not belong to the job's request_id"):
        parse_job(json.dumps(document))

