"""Accepting POST /v1/messages: every validation rule, the 202 answer and the job it queues
(tuma.domain.messages.accept_send, with tuma.domain.fields and tuma.domain.requests)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.jobs import parse_job
from tuma.domain.messages import MAX_RECIPIENTS, accept_send, send_response

NOW = datetime(2026, 3, 13, 14, 30, 0, 123456, tzinfo=UTC)
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "layers/tuma/tuma/schemas/send_job.v1.json").read_text())


def request(**fields) -> dict:
    base = {"to": ["+254712345678"], "from": "TUMA", "body": "Hello from Tuma"}
    base.update(fields)
    return {name: value for name, value in base.items() if value is not ...}


def accept(payload, tenant="tenant-a"):
    return accept_send(payload, tenant, NOW)


def refused(payload, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        accept(payload, **kwargs)
    assert raised.value.status == 400
    return raised.value


def problem_fields(problem: ValidationFailed) -> list[str]:
    return [detail["field"] for detail in problem.details]


def the_job(accepted) -> dict:
    """A single send of at most 1000 numbers is one job."""
    (job,) = accepted.jobs()
    return job


# --- the happy path and the answer -----------------------------------------------------------


def test_a_valid_request_is_queued_with_ulid_ids_in_sayasms_response_shape():
    accepted = accept(request(to=["+254712345678", "0722111222"], callback_url="https://example.com/hook"))
    response = send_response(accepted)

    assert re.fullmatch(rf"msg_{ULID}", accepted.request_id)
    assert response == {
        "status": "queued",
        "message_id": accepted.request_id,
        "provider": None,
        "encoding": "GSM-7",
        "segments": 1,
        "recipients": [
            {"number": "+254712345678", "status": "queued", "message_id": f"{accepted.request_id}_1"},
            {"number": "+254722111222", "status": "queued", "message_id": f"{accepted.request_id}_2"},
        ],
        "created_at": "2026-03-13T14:30:00.123Z",
    }
    assert accepted.tenant_id == "tenant-a"
    assert accepted.sender == "TUMA"
    assert accepted.callback_url == "https://example.com/hook"


def test_each_request_gets_a_new_id():
    assert accept(request()).request_id != accept(request()).request_id


@pytest.mark.parametrize("written", ["0712345678", "712345678", "254712345678", "+254712345678"])
def test_numbers_in_any_kenyan_form_are_normalised_to_e164(written):
    accepted = accept(request(to=[written]))
    assert accepted.entries[0].number == "+254712345678"
    assert accepted.entries[0].given == written
    assert send_response(accepted)["recipients"][0]["number"] == "+254712345678"
    assert the_job(accepted)["recipients"] == [{"message_id": f"{accepted.request_id}_1", "number": "+254712345678"}]


def test_the_job_matches_the_send_job_v1_schema_and_parses_back():
    accepted = accept(request(to=["0712345678", "0722111222"], provider="254sms",
                              callback_url="https://example.com/hook"))
    job = the_job(accepted)

    jsonschema.Draft7Validator(SCHEMA).validate(job)
    assert job == {
        "version": 1, "origin": "api", "tenant_id": "tenant-a", "request_id": accepted.request_id, "provider": "254sms",
        "from": "TUMA", "body": "Hello from Tuma", "callback_url": "https://example.com/hook",
        "recipients": [{"message_id": f"{accepted.request_id}_1", "number": "+254712345678"},
                       {"message_id": f"{accepted.request_id}_2", "number": "+254722111222"}],
    }
    parsed = parse_job(json.dumps(job), "sqs-message-1")
    assert parsed.request_id == accepted.request_id
    assert parsed.from_api
    assert [(r.number, r.body) for r in parsed.recipients] == [("+254712345678", "Hello from Tuma"),
                                                                ("+254722111222", "Hello from Tuma")]


def test_the_job_has_no_callback_url_when_none_was_given():
    job = the_job(accept(request()))
    assert "callback_url" not in job
    jsonschema.Draft7Validator(SCHEMA).validate(job)


# --- recipients: rejected one by one ---------------------------------------------------------


def test_an_unusable_number_is_rejected_for_that_recipient_while_the_rest_are_queued():
    accepted = accept(request(to=["+254712345678", "not a number", "+254202222222", "0722111222"]))
    views = send_response(accepted)["recipients"]

    assert [v["status"] for v in views] == ["queued", "rejected", "rejected", "queued"]
    assert [v["message_id"] for v in views] == [f"{accepted.request_id}_{n}" for n in (1, 2, 3, 4)]
    assert views[1] == {"number": "not a number", "status": "rejected", "message_id": f"{accepted.request_id}_2",
                        "reason": "number is not a phone number"}
    assert views[2]["reason"] == "number is not a mobile number"
    assert "reason" not in views[0]
    # The job carries only the sendable recipients, with their ids from the request.
    assert the_job(accepted)["recipients"] == [
        {"message_id": f"{accepted.request_id}_1", "number": "+254712345678"},
        {"message_id": f"{accepted.request_id}_4", "number": "+254722111222"},
    ]
    assert [e.index for e in accepted.rejected] == [2, 3]
    jsonschema.Draft7Validator(SCHEMA).validate(the_job(accepted))


def test_a_recipient_that_is_not_a_string_is_rejected_and_shown_as_given():
    accepted = accept(request(to=["+254712345678", 712345678, None]))
    views = send_response(accepted)["recipients"]
    assert [v["status"] for v in views] == ["queued", "rejected", "rejected"]
    assert views[1]["number"] == "712345678"
    assert views[2]["number"] == "null"  # the JSON the caller sent
    assert views[1]["reason"] == "number must be a non-empty string"


def test_a_duplicate_number_is_rejected_even_written_differently():
    accepted = accept(request(to=["0712345678", "+254712345678", "254712345678", "0722111222"]))
    views = send_response(accepted)["recipients"]
    assert [v["status"] for v in views] == ["queued", "rejected", "rejected", "queued"]
    assert views[1]["reason"] == "duplicate of message 1"
    assert views[2]["reason"] == "duplicate of message 1"
    assert [r["number"] for r in the_job(accepted)["recipients"]] == ["+254712345678", "+254722111222"]


def test_nothing_sendable_is_a_400_listing_each_recipient():
    problem = refused(request(to=["hello", "+14155552671"]))
    assert problem.code == "no_sendable_recipient"
    assert problem.details == [
        {"field": "to[0]", "reason": "number is not a phone number"},
        {"field": "to[1]", "reason": "number is not a Kenyan number (+254)"},
    ]


@pytest.mark.parametrize("to, reason", [
    (..., "is required"),
    (None, "must be an array of phone numbers"),  # null is not an array (send_request.v1.json)
    ("+254712345678", "must be an array of phone numbers"),
    ({"0": "+254712345678"}, "must be an array of phone numbers"),
    ([], "must be a non-empty array"),
])
def test_to_must_be_a_non_empty_array(to, reason):
    problem = refused(request(to=to))
    assert problem.code == "invalid_request"
    assert {"field": "to", "reason": reason} in problem.details


def test_exactly_the_maximum_of_recipients_is_accepted():
    numbers = [f"+25471{n:07d}" for n in range(MAX_RECIPIENTS)]
    accepted = accept(request(to=numbers))
    assert len(accepted.queued) == MAX_RECIPIENTS == 1000
    assert accepted.entries[-1].message_id == f"{accepted.request_id}_1000"
    jsonschema.Draft7Validator(SCHEMA).validate(the_job(accepted))  # still one job


def test_more_than_the_maximum_of_recipients_is_a_413():
    numbers = [f"+25471{n:07d}" for n in range(MAX_RECIPIENTS + 1)]
    with pytest.raises(TooLarge) as raised:
        accept(request(to=numbers))
    assert raised.value.status == 413
    assert raised.value.code == "too_many_recipients"
    assert raised.value.details == [{"field": "to", "reason": "at most 1000 numbers"}]


# --- sender id -------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["TUMA", "T", "SAYARADIUS", "A" * 11, "Shop2024", "1" * 15, "0712345678", "1"])
def test_valid_sender_ids(sender):
    assert accept(request(**{"from": sender})).sender == sender


@pytest.mark.parametrize("sender", [
    "A" * 12,          # 12 alphanumerics
    "1" * 16,          # 16 digits
    "A1" * 6 + "1",    # 13 mixed
    "MY SHOP",         # a blank
    "TUMA!",
    "TUMA-KE",
    "ŤUMA",            # a letter, but not ASCII
    "",
    123456,            # a number, not a string
])
def test_invalid_sender_ids(sender):
    problem = refused(request(**{"from": sender}))
    assert problem.details == [{"field": "from",
                                "reason": "must be at most 11 letters and digits, or at most 15 digits"}]


def test_a_sender_id_with_a_trailing_newline_is_refused():
    refused(request(**{"from": "TUMA\n"}))


def test_the_sender_id_is_required():
    problem = refused(request(**{"from": ...}))
    assert problem.details == [{"field": "from", "reason": "is required"}]


# --- body ------------------------------------------------------------------------------------


def test_a_body_of_six_gsm7_segments_is_accepted():
    accepted = accept(request(body="a" * 918))
    assert (accepted.shared_measure.encoding, accepted.shared_measure.segments) == ("GSM-7", 6)
    assert send_response(accepted)["encoding"] == "GSM-7"
    assert send_response(accepted)["segments"] == 6


def test_the_body_limit_counts_segments_not_characters():
    body = "Habari ya leo? ✓ " * 23  # 391 characters: ✓ is outside GSM-7, so UCS-2, 6 parts of 67
    assert accept(request(body=body)).body == body
    problem = refused(request(body=body + "Asante sana!"))  # 403 characters: 7 parts
    assert problem.details == [{"field": "body", "reason": (
        "is 7 segments (UCS-2, 403 characters); at most 6 segments are allowed "
        "(918 GSM-7 characters, or 402 UCS-2 units)")}]


def test_a_body_of_919_characters_is_refused_naming_the_limit():
    problem = refused(request(body="a" * 919))
    assert problem.details == [{"field": "body", "reason": (
        "is 7 segments (GSM-7, 919 characters); at most 6 segments are allowed "
        "(918 GSM-7 characters, or 402 UCS-2 units)")}]


def test_extension_characters_count_twice_towards_the_limit():
    problem = refused(request(body="{€}" * 200))  # 600 characters, 1,200 septets
    assert problem.details[0]["reason"].startswith("is 8 segments (GSM-7, 600 characters)")


@pytest.mark.parametrize("body, reason", [
    (..., "is required"),
    (None, "must be a non-empty string"),  # null is not a string
    ("", "must be a non-empty string"),
    ("   \n\t", "must be a non-empty string"),
    (42, "must be a non-empty string"),
    (["Hello"], "must be a non-empty string"),
])
def test_the_body_must_be_a_non_empty_string(body, reason):
    problem = refused(request(body=body))
    assert problem.details == [{"field": "body", "reason": reason}]


# --- provider, callback_url, unknown fields --------------------------------------------------


@pytest.mark.parametrize("provider", ["254sms", "sayasms"])
def test_a_named_provider_pins_the_request_and_its_job(provider):
    accepted = accept(request(provider=provider))
    assert accepted.provider == provider
    assert the_job(accepted)["provider"] == provider


def test_without_a_provider_the_job_is_left_to_the_routing_policy():
    accepted = accept(request())
    assert accepted.provider is None
    assert "provider" not in the_job(accepted)


@pytest.mark.parametrize("provider", ["twilio", "SAYASMS", "254SMS", "", None, 254, ["sayasms"]])
def test_an_unknown_provider_is_refused(provider):
    problem = refused(request(provider=provider))
    assert problem.details == [{"field": "provider", "reason": "must be one of 254sms, sayasms"}]


@pytest.mark.parametrize("url", ["https://example.com/hooks/sms", "http://127.0.0.1:8080/cb?x=1"])
def test_an_absolute_http_callback_url_is_accepted(url):
    assert accept(request(callback_url=url)).callback_url == url


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "/hooks/sms", "example.com/hook", "https://", "", "javascript:alert(1)", 42,
    {"url": "https://example.com"},
])
def test_a_callback_url_that_is_not_absolute_http_is_refused(url):
    problem = refused(request(callback_url=url))
    assert [d["field"] for d in problem.details] == ["callback_url"]
    assert problem.details[0]["reason"].startswith("must be an absolute http(s) URL: a lower-case http:// or https://")


def test_unknown_fields_are_refused_by_name():
    problem = refused(request(priority="high", To=["+254712345678"]))
    assert problem.code == "invalid_request"
    assert problem.details == [{"field": "To", "reason": "unknown field"},
                               {"field": "priority", "reason": "unknown field"}]


def test_a_scheduled_send_answers_scheduled_with_its_time_in_utc():
    accepted = accept(request(to=["+254712345678", "0712"], scheduled_at="2026-03-14T09:00:00.5+03:00"))
    response = send_response(accepted)

    assert accepted.scheduled_at == "2026-03-14T06:00:00.500Z"
    assert response["status"] == "scheduled" and response["scheduled_at"] == "2026-03-14T06:00:00.500Z"
    assert [r["status"] for r in response["recipients"]] == ["scheduled", "rejected"]


def test_a_scheduled_at_in_the_past_is_refused_with_the_other_problems():
    problem = refused(request(scheduled_at="2026-03-13T14:00:00Z", body=""))
    assert sorted(problem_fields(problem)) == ["body", "scheduled_at"]


def test_every_problem_is_listed_at_once_and_the_message_names_the_first():
    problem = refused({"to": "x", "from": "WAY_TOO_LONG_SENDER", "body": "", "provider": "x",
                       "callback_url": "nope", "extra": 1})
    assert sorted(problem_fields(problem)) == ["body", "callback_url", "extra", "from", "provider", "to"]
    assert problem.message == "`extra` unknown field (and 5 more problem(s), see details)."


@pytest.mark.parametrize("payload", [None, [], ["+254712345678"], "to=+254712345678", 42, True])
def test_a_body_that_is_not_a_json_object_is_refused(payload):
    problem = refused(payload)
    assert problem.code == "invalid_request"
    assert problem.message == "The request body must be a JSON object."


def test_a_refusal_has_the_api_error_shape():
    problem = refused(request(body=""))
    assert problem.to_body() == {"error": {"code": "invalid_request",
                                           "message": "`body` must be a non-empty string.",
                                           "details": [{"field": "body", "reason": "must be a non-empty string"}]}}
