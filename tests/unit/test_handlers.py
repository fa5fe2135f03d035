"""The Lambda handlers (functions/<name>/app.py) called with hand-built events, under moto, with
the provider simulators on loopback."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from conftest import ULID, api_event, sqs_event
from tuma.store.api_keys import create_api_key, key_hash
from tuma.store.table import message_pk, recipient_pk, recipient_sk

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "layers/tuma/tuma/schemas/send_job.v1.json").read_text())
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/POST/v1/messages"
API_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/*"

# Handlers that answer without adding a metric make Powertools' log_metrics warn: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def answer(response: dict) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a REST proxy response."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    headers |= {k.lower(): v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None, headers


def assert_error_shape(status: int, body: dict, headers: dict, code: str) -> None:
    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)


@pytest.fixture
def send(functions, context, aws):
    module = functions("send")
    return lambda body, tenant="tenant-a": answer(module.handler(api_event("POST", "/v1/messages", body=body,
                                                                          tenant=tenant), context))


@pytest.fixture
def status(functions, context, aws):
    module = functions("status")

    def get(message_id: str, tenant: str = "tenant-a"):
        event = api_event("GET", f"/v1/messages/{message_id}", tenant=tenant, resource="/v1/messages/{message_id}",
                          path_parameters={"message_id": message_id})
        return answer(module.handler(event, context))
    return get


@pytest.fixture
def balance(functions, context, aws):
    """GET /v1/account/balance; each provider's circuit is checked closed and left out of the body."""
    module = functions("balance")

    def get():
        code, body, headers = answer(module.handler(api_event("GET", "/v1/account/balance"), context))
        for shown in body["providers"].values():
            assert shown.pop("circuit") == {"state": "closed", "failures": 0}
        return code, body, headers
    return get


def test_balance_shows_each_providers_circuit(functions, context, aws, sim254, simsaya):
    from tuma.domain.circuit import CircuitSettings
    from tuma.store.circuit import DynamoBreaker

    breaker = DynamoBreaker(CircuitSettings(threshold=1))
    now = datetime.now(UTC)
    breaker.record("sayasms", breaker.gate("sayasms", now), healthy=False, now=now)

    _, body, _ = answer(functions("balance").handler(api_event("GET", "/v1/account/balance"), context))

    assert body["providers"]["sayasms"]["circuit"] == {"state": "open", "since": now.isoformat(), "failures": 1}
    assert body["providers"]["254sms"]["circuit"] == {"state": "closed", "failures": 0}


@pytest.fixture
def sender(functions, context, aws):
    module = functions("sender")
    return lambda bodies: module.handler(sqs_event(bodies), context)


@pytest.fixture
def authorize(functions, context, aws):
    module = functions("authorizer")
    return lambda token: module.handler({"type": "TOKEN", "authorizationToken": token, "methodArn": METHOD_ARN},
                                        context)


# --- POST /v1/messages -----------------------------------------------------------------------


def test_post_messages_answers_202_queues_one_job_and_stores_the_request(send, aws):
    code, body, headers = send({"to": ["0712345678", "+254722111222", "12345"], "from": "TUMA",
                                "body": "Hello from Tuma", "callback_url": "https://example.com/hooks/sms"})

    assert code == 202
    assert headers["content-type"] == "application/json"
    request_id = body["message_id"]
    assert re.fullmatch(rf"msg_{ULID}", request_id)
    assert body["status"] == "queued"
    assert body["provider"] is None  # not pinned: the routing policy decides when sending
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["created_at"])
    assert body["recipients"] == [
        {"number": "+254712345678", "status": "queued", "message_id": f"{request_id}_1"},
        {"number": "+254722111222", "status": "queued", "message_id": f"{request_id}_2"},
        {"number": "12345", "status": "rejected", "message_id": f"{request_id}_3",
         "reason": "number is not a valid phone number"},
    ]

    (message,) = aws.receive(aws.queue_url)
    job = json.loads(message["Body"])
    jsonschema.Draft7Validator(SCHEMA).validate(job)
    assert job == {"version": 1, "origin": "api", "tenant_id": "tenant-a", "request_id": request_id,
                   "from": "TUMA", "body": "Hello from Tuma",
                   "callback_url": "https://example.com/hooks/sms",
                   "recipients": [{"message_id": f"{request_id}_1", "number": "+254712345678"},
                                  {"message_id": f"{request_id}_2", "number": "+254722111222"}]}

    # The request as accepted: one request item and one chunk of its numbers.
    items = {item["sk"]: item for item in aws.items()}
    assert set(items) == {"REQ", "C#000001"}
    assert {item["pk"] for item in items.values()} == {message_pk("tenant-a", request_id)}
    request = items["REQ"]
    assert (request["kind"], request["request_id"], request.get("provider"), request["from"]) == (
        "send", request_id, None, "TUMA")
    assert (request["total"], request["accepted"], request["rejected"]) == (3, 2, 1)
    assert request["created_at"] == body["created_at"]
    assert request["callback_url"] == "https://example.com/hooks/sms"
    assert items["C#000001"]["numbers"] == ["+254712345678", "+254722111222", "12345"]
    assert items["C#000001"]["rejected"] == {"3": "number is not a valid phone number"}
    assert aws.receive(aws.dlq_url) == []


def test_post_messages_with_a_named_provider(send, aws):
    code, body, _ = send({"to": ["+254712345678"], "from": "TUMA", "body": "Hi", "provider": "254sms"})
    assert (code, body["provider"]) == (202, "254sms")
    assert json.loads(aws.receive(aws.queue_url)[0]["Body"])["provider"] == "254sms"


def test_malformed_json_is_a_400_invalid_json(send, aws):
    code, body, headers = send('{"to": ["+254712345678"], "from": "TUMA",')
    assert code == 400
    assert_error_shape(code, body, headers, "invalid_json")
    assert body["error"]["message"].startswith("The request body is not valid JSON")
    assert aws.receive(aws.queue_url) == []
    assert aws.items() == []


@pytest.mark.parametrize("payload, status, code", [
    ("{", 400, "invalid_json"),
    ("not json at all", 400, "invalid_json"),
    (None, 400, "invalid_request"),
    ("", 400, "invalid_request"),
    ("[]", 400, "invalid_request"),
    ("null", 400, "invalid_request"),
    ({"to": ["+254712345678"], "from": "TUMA"}, 400, "invalid_request"),
    ({"to": ["+254712345678"], "from": "TUMA", "body": "x" * 919}, 400, "invalid_request"),
    ({"to": ["+254712345678"], "from": "TUMA", "body": "Hi", "colour": "red"}, 400, "invalid_request"),
    ({"to": ["+254712345678"], "from": "TUMA", "body": "Hi", "provider": "twilio"}, 400, "invalid_request"),
    ({"to": ["+14155552671", "hello"], "from": "TUMA", "body": "Hi"}, 400, "no_sendable_recipient"),
    ({"to": [f"+25471{n:07d}" for n in range(1001)], "from": "TUMA", "body": "Hi"}, 413, "too_many_recipients"),
], ids=["truncated", "text", "no-body", "empty-body", "array", "null", "no-body-field", "body-too-long",
        "unknown-field", "bad-provider", "nothing-sendable", "too-many"])
def test_every_refusal_has_the_json_error_shape_and_queues_nothing(send, aws, payload, status, code):
    got_status, body, headers = send(payload)
    assert got_status == status
    assert_error_shape(got_status, body, headers, code)
    assert aws.receive(aws.queue_url) == []
    assert aws.items() == []


def test_validation_details_name_each_field(send):
    _, body, _ = send({"to": "0712345678", "from": "A VERY LONG SENDER", "body": ""})
    assert sorted(d["field"] for d in body["error"]["details"]) == ["body", "from", "to"]


@pytest.mark.parametrize("method, path", [("GET", "/v1/nothing"), ("POST", "/v1/messages/extra"),
                                          ("DELETE", "/v1/messages")])
def test_an_unknown_route_is_a_json_404(functions, context, aws, method, path):
    status, body, headers = answer(functions("send").handler(api_event(method, path), context))
    assert status == 404
    assert_error_shape(status, body, headers, "not_found")
    assert path in body["error"]["message"]


def test_deeply_nested_json_is_a_400_not_a_crash(send):
    status, body, headers = send("[" * 100_000)
    assert_error_shape(status, body, headers, "invalid_json")


def test_long_junk_numbers_are_a_caller_error_not_a_crash(send):
    try:
        status, _, _ = send({"to": ["+254712345678"] + ["9" * 500] * 999, "from": "TUMA", "body": "Hi"})
    except Exception as problem:  # the handler itself blew up: what API Gateway shows as a 502
        pytest.fail(f"handler raised {type(problem).__name__}: {problem}")
    assert status < 500


# --- GET /v1/messages/{id} -------------------------------------------------------------------


@pytest.fixture
def sent_request(send):
    """A request of three recipients, the third rejected: its 202 body."""
    code, body, _ = send({"to": ["+254712345678", "+254722111222", "+14155552671"], "from": "TUMA",
                          "body": "Hello"})
    assert code == 202
    return body


def test_get_a_request_id_shows_every_recipient_and_counts(status, sent_request):
    request_id = sent_request["message_id"]
    code, body, _ = status(request_id)

    assert code == 200
    assert body["message_id"] == request_id
    assert (body["from"], body["provider"], body["created_at"]) == ("TUMA", None, sent_request["created_at"])
    assert body["counts"] == {"queued": 2, "rejected": 1}
    assert [(r["message_id"], r["status"]) for r in body["recipients"]] == [
        (f"{request_id}_1", "queued"), (f"{request_id}_2", "queued"), (f"{request_id}_3", "rejected")]
    assert body["recipients"][2]["reason"] == "number is not a Kenyan number (+254)"


def test_get_a_recipient_id_shows_that_recipient_with_history(status, sent_request):
    request_id = sent_request["message_id"]
    code, body, _ = status(f"{request_id}_2")
    assert code == 200
    assert body == {"message_id": f"{request_id}_2", "request_id": request_id, "number": "+254722111222",
                    "status": "queued", "provider": None, "created_at": sent_request["created_at"],
                    "encoding": "GSM-7", "segments": 1,
                    "history": [{"status": "queued", "at": sent_request["created_at"]}]}


@pytest.mark.parametrize("message_id", [
    "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4",      # well formed, never issued
    "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1",
    "not-an-id",
    "msg_",
])
def test_get_an_unknown_id_is_a_404(status, sent_request, message_id):
    code, body, headers = status(message_id)
    assert code == 404
    assert_error_shape(code, body, headers, "not_found")
    assert body["error"]["message"] == f"No message {message_id}."


@pytest.mark.parametrize("suffix", ["_4", "_999", "_0", "_1000001"])
def test_get_a_recipient_index_the_request_does_not_have_is_a_404(status, sent_request, suffix):
    code, body, headers = status(sent_request["message_id"] + suffix)
    assert code == 404
    assert_error_shape(code, body, headers, "not_found")


@pytest.mark.parametrize("suffix", ["", "_1"])
def test_another_tenants_message_is_a_404_like_an_unknown_one(status, sent_request, suffix):
    message_id = sent_request["message_id"] + suffix
    assert status(message_id, tenant="tenant-a")[0] == 200
    code, body, headers = status(message_id, tenant="tenant-b")
    assert code == 404
    assert_error_shape(code, body, headers, "not_found")
    assert body["error"]["message"] == f"No message {message_id}."


def test_get_a_batch_id_on_the_messages_route_points_to_the_batches_route(status, sent_request):
    code, body, headers = status("bat_01HX4ZQ9GKD2VP7C9XR3MNBVT4")
    assert code == 404
    assert_error_shape(code, body, headers, "not_found")
    assert "GET /v1/batches/bat_01HX4ZQ9GKD2VP7C9XR3MNBVT4" in body["error"]["message"]


@pytest.mark.parametrize("batch_id", ["bat_01HX4ZQ9GKD2VP7C9XR3MNBVT4", "bat_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1",
                                      "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4", "nonsense"])
def test_get_an_unknown_batch_is_a_404(functions, context, aws, batch_id):
    event = api_event("GET", f"/v1/batches/{batch_id}", resource="/v1/batches/{batch_id}",
                      path_parameters={"batch_id": batch_id})
    code, body, headers = answer(functions("status").handler(event, context))
    assert code == 404
    assert_error_shape(code, body, headers, "not_found")


# --- GET /v1/account/balance -----------------------------------------------------------------


def test_balance_with_both_providers_up(balance, simsaya, sim254):
    code, body, _ = balance()
    assert code == 200
    fetched_at = body["providers"]["254sms"]["fetched_at"]  # the cache's timing: tests/unit/test_balances.py
    assert body == {"providers": {
        "254sms": {"available": True, "credits": 1000, "fetched_at": fetched_at, "cached": False},
        "sayasms": {"available": True, "balance": 1000, "currency": "KES", "sms_credits": 1111,
                    "fetched_at": body["providers"]["sayasms"]["fetched_at"], "cached": False},
    }}


def test_balance_with_254sms_down_still_answers_200(balance, simsaya, monkeypatch, closed_url):
    monkeypatch.setenv("SMS254_BASE_URL", closed_url)
    code, body, _ = balance()
    assert code == 200
    assert body["providers"]["254sms"] == {"available": False, "reason": "connection failed: refused",
                                           "code": "connection_refused"}
    assert body["providers"]["sayasms"]["available"] is True


def test_balance_with_sayasms_failing_still_answers_200(balance, simsaya, sim254):
    simsaya.faults({"status": 503})
    code, body, _ = balance()
    assert code == 200
    assert body["providers"]["sayasms"] == {"available": False, "reason": "HTTP 503", "code": "503"}
    assert body["providers"]["254sms"] | {"fetched_at": None} == {"available": True, "credits": 1000,
                                                                  "fetched_at": None, "cached": False}


def test_balance_with_254sms_refusing_the_credentials_shows_its_code(balance, simsaya, sim254):
    sim254.faults({"error": "X001"})
    _, body, _ = balance()
    assert body["providers"]["254sms"]["available"] is False
    assert body["providers"]["254sms"]["code"] == "X001"


# --- the authorizer --------------------------------------------------------------------------


def test_a_valid_key_is_allowed_as_its_tenant(authorize, aws):
    key = create_api_key("tenant-a", "test key")
    policy = authorize(f"Bearer {key}")
    assert policy == {
        "principalId": "tenant-a",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": API_ARN}]},
        "context": {"tenant_id": "tenant-a", "sender_ids": "*"},
    }


def test_the_bearer_scheme_is_case_insensitive(authorize, aws):
    key = create_api_key("tenant-a")
    assert authorize(f"bearer {key}")["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_keys_are_stored_only_as_their_hash(aws):
    key = create_api_key("tenant-a")
    (item,) = aws.items()
    assert (item["pk"], item["sk"], item["tenant_id"]) == (f"KEY#{key_hash(key)}", "KEY", "tenant-a")
    assert key not in json.dumps(item, default=str)


def _denied(policy: dict) -> bool:
    (statement,) = policy["policyDocument"]["Statement"]
    return statement["Effect"] == "Deny" and policy["principalId"] == "anonymous" and "context" not in policy


@pytest.mark.parametrize("token", [
    "Bearer tuma_not_a_key_anybody_has",
    "tuma_not_a_key_anybody_has",  # no scheme
    "Bearer ",
    "Bearer",
    "",
    "Bearer \ud800",  # a lone surrogate (found by test_fuzz_doors.py): hashing it raised, a 500
    "Bearer tuma_\u00e9",
])
def test_an_unknown_key_or_no_bearer_is_denied(authorize, aws, token):
    create_api_key("tenant-a")
    assert _denied(authorize(token))


def test_a_real_key_without_the_bearer_scheme_is_denied(authorize, aws):
    key = create_api_key("tenant-a")
    assert _denied(authorize(key))
    assert _denied(authorize(f"Basic {key}"))


def test_a_disabled_key_is_denied(authorize, aws):
    key = create_api_key("tenant-a")
    aws.table.update_item(Key={"pk": f"KEY#{key_hash(key)}", "sk": "KEY"}, UpdateExpression="SET disabled = :t",
                          ExpressionAttributeValues={":t": True})
    assert _denied(authorize(f"Bearer {key}"))


# --- the sender ------------------------------------------------------------------------------


def _job(send, aws, provider: str, numbers=("+254712345678", "+254722111222")) -> tuple[str, str]:
    """A job as the send handler queues it: (its JSON, its request id)."""
    code, body, _ = send({"to": list(numbers), "from": "TUMA", "body": "Hello", "provider": provider})
    assert code == 202
    (message,) = aws.receive(aws.queue_url)
    return message["Body"], body["message_id"]


def _statuses(aws, request_id: str, count: int = 2) -> list[str]:
    return [aws.item(recipient_pk("tenant-a", request_id, n), recipient_sk(n))["status"] for n in range(1, count + 1)]


def test_sender_batch_good_malformed_and_outage(sender, send, aws, simsaya, sim254, monkeypatch, closed_url):
    good, good_id = _job(send, aws, "sayasms")
    down, down_id = _job(send, aws, "254sms")
    monkeypatch.setenv("SMS254_BASE_URL", closed_url)  # 254sms is down

    result = sender([good, "this is not a job", down])

    # Only the job whose provider is down goes back to the queue.
    assert result == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert _statuses(aws, good_id) == ["sent", "sent"]
    assert len(simsaya.answered()) == 1
    assert sorted(m["to"] for m in simsaya.messages()) == ["+254712345678", "+254722111222"]
    # The malformed one is parked in the DLQ with its reason, not retried.
    (parked,) = aws.receive(aws.dlq_url)
    assert parked["Body"] == "this is not a job"
    assert parked["MessageAttributes"]["reason"]["StringValue"].startswith("not JSON")
    assert parked["MessageAttributes"]["source_message_id"]["StringValue"] == "m2"
    # The outage left the job waiting for its retry, nothing recorded for its messages.
    claim = aws.item(message_pk("tenant-a", down_id), "J#000001")
    assert (claim["state"], claim["pending"]) == ("retry", [1, 2])
    assert aws.item(recipient_pk("tenant-a", down_id, 1), recipient_sk(1)) is None


def test_sender_a_batch_whose_every_job_hits_an_outage_fails_whole_then_sends_once(
        sender, send, aws, sim254, simsaya, monkeypatch, closed_url):
    job, request_id = _job(send, aws, "254sms")
    url = sim254.url
    monkeypatch.setenv("SMS254_BASE_URL", closed_url)
    # Powertools fails the invocation when every record failed: SQS retries the batch all the same.
    with pytest.raises(BatchProcessingError):
        sender([job])
    assert sim254.requests() == []

    monkeypatch.setenv("SMS254_BASE_URL", url)
    assert sender([job]) == {"batchItemFailures": []}
    assert sender([job]) == {"batchItemFailures": []}  # and a later redelivery sends nothing more

    assert _statuses(aws, request_id) == ["sent", "sent"]
    (call,) = sim254.requests()
    assert call["body"]["phone"] == "254712345678,254722111222"


def test_sender_a_job_that_breaks_the_schema_goes_to_the_dlq_with_its_reason(sender, send, aws, simsaya, sim254):
    good, good_id = _job(send, aws, "sayasms")
    bad = json.loads(good) | {"version": 2}

    assert sender([json.dumps(bad), good]) == {"batchItemFailures": []}

    (parked,) = aws.receive(aws.dlq_url)
    assert json.loads(parked["Body"]) == bad
    assert parked["MessageAttributes"]["reason"]["StringValue"].startswith("does not match send_job.v1: ")
    assert parked["MessageAttributes"]["source_message_id"]["StringValue"] == "m1"
    assert _statuses(aws, good_id) == ["sent", "sent"]
    assert len(simsaya.requests()) == 1


def test_sender_a_rejected_job_is_final_and_not_retried(sender, send, aws, sim254, simsaya):
    job, request_id = _job(send, aws, "254sms")
    sim254.faults({"error": "X002"})
    other, other_id = _job(send, aws, "sayasms")

    assert sender([job, other]) == {"batchItemFailures": []}

    assert _statuses(aws, request_id) == ["failed", "failed"]
    assert aws.item(recipient_pk("tenant-a", request_id, 1), recipient_sk(1))["error_code"] == "X002"
    assert _statuses(aws, other_id) == ["sent", "sent"]
    assert aws.receive(aws.dlq_url) == []


def test_send_then_sender_then_status_shows_the_whole_story(send, sender, status, aws, simsaya, sim254):
    job, request_id = _job(send, aws, "sayasms", numbers=["0712345678"])
    assert sender([job]) == {"batchItemFailures": []}

    code, body, _ = status(f"{request_id}_1")

    assert code == 200
    (taken,) = simsaya.messages()
    assert body["status"] == "sent"
    assert body["provider_message_id"] == taken["message_id"]
    assert body["cost"] == "KES 0.90"
    assert [h["status"] for h in body["history"]] == ["queued", "sending", "sent"]
    assert status(request_id)[1]["counts"] == {"sent": 1}


@pytest.mark.parametrize("text", ['{"to": ["0712345678"], "from": "TUMA", "body": "Hi \\ud83d"}',
                                  '{"to": ["\\udc00"], "from": "TUMA", "body": "Hi"}'])
def test_half_a_surrogate_pair_anywhere_is_a_400_not_a_crash(send, text):
    code, body, _ = send(text)
    assert code == 400
    assert body["error"]["code"] == "invalid_text"
    assert "lone surrogate" in body["error"]["message"]
