"""Every door answers hostile input with a 4xx in Tuma's error shape, never a 5xx: property-based
(hypothesis) requests at each API route, the 254sms-compatible route and the SayaSMS webhook.
Each body is a valid one with one value swapped for something hostile (a wrong type, a lone
surrogate, a control character, a huge number, a deep nest), or any JSON at all; path and query
parameters are any text. A 2xx is allowed (a hostile value may be a fine one); a 5xx is a bug.
The examples are bounded and derandomized, so a run is the same on every machine. Beside
tests/e2e/test_fuzz.py (schemathesis, requests the spec describes): this one sends what the spec
forbids, and reaches the webhook, which the spec does not describe (docs/architecture.md)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import api_event
from test_delivery_reports_handlers import TOKEN, Context, load, url_event

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "\ud800", "a\udfffb", "\u202e0712345678", "\ufeff", "0" * 5000, "😀" * 300, "{{name}}",
    "07" + "1" * 40, "+254 712 345 678", "NaN", "-1", "1e999", "T#x#M#y", "../../etc", "%00", "\r\n", "'\"",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), HOSTILE_TEXT)
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                        max_leaves=12)


def mutated(valid: dict) -> st.SearchStrategy:
    """`valid` with one value (at any depth) replaced or removed, or a key added, or any JSON."""
    paths = list(_paths(valid))

    def swap(choice):
        path, value, drop = choice
        body = json.loads(json.dumps(valid))
        holder = body
        for step in path[:-1]:
            holder = holder[step]
        if drop and isinstance(holder, dict):
            holder.pop(path[-1], None)
        else:
            holder[path[-1]] = value
        return body

    edits = st.tuples(st.sampled_from(paths), ANY_JSON, st.booleans()).map(swap)
    added = st.tuples(st.text(max_size=12), ANY_JSON).map(lambda kv: {**valid, kv[0]: kv[1]})
    return st.one_of(edits, edits, added, ANY_JSON)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield (*prefix, i)
            yield from _paths(inner, (*prefix, i))


def assert_answered(response: dict, compat: bool = False) -> None:
    """Below 500; a refusal in Tuma's error shape (the 254sms-compatible route: in 254sms's)."""
    status = response["statusCode"]
    assert status < 500, response
    if status >= 400:
        body = json.loads(response["body"])
        if compat:
            assert {"statusCode", "statusMessage"} <= set(body), body
        else:
            assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body


def _raw(body) -> str:
    # allow_nan: Python writes NaN and Infinity, which a client may send and json.loads reads.
    return json.dumps(body, allow_nan=True)


SEND = {"to": ["0712345678", "+254722111222"], "from": "TUMA", "body": "Habari", "provider": "sayasms",
        "callback_url": "https://example.com/hook"}
SCHEDULED = {"to": ["0712345678"], "from": "TUMA", "body": "Habari",
             "scheduled_at": (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
BULK = {"from": "TUMA", "messages": [{"to": "0712345678", "body": "Hi Amina"}, {"to": "0722111222", "body": "Hi Juma"}],
        "callback_url": "https://example.com/hook", "provider": "254sms"}
TEMPLATE = {"from": "TUMA", "template": "Hi {name}, you owe {amount}", "recipients": [
    {"to": "0712345678", "vars": {"name": "Amina", "amount": 12.5}}, {"to": "0722111222", "vars": {"name": "Juma"}}]}
COMPAT = {"username": "254SMS USERNAME", "api_key": "k", "sender_id": "254sms", "phone": "254722565656",
          "message": "Hello"}
REPORT = {"event": "message.delivered", "message_id": "msg_SAYA_1", "to": "+254712345678", "status": "delivered",
          "network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z", "latency_ms": 2489}


@pytest.mark.parametrize("path, function, valid", [
    ("/v1/messages", "send", SEND), ("/v1/messages", "send", SCHEDULED), ("/v1/messages/estimate", "send", SEND),
    ("/v1/messages/bulk", "bulk", BULK), ("/v1/messages/bulk", "bulk", TEMPLATE)])
def test_the_accepting_routes_never_answer_5xx(functions, context, aws, path, function, valid):
    handler = functions(function).handler

    @SETTINGS
    @given(mutated(valid))
    def accept(body):
        assert_answered(handler(api_event("POST", path, body=_raw(body)), context))

    accept()


def test_the_254sms_compatible_route_never_answers_5xx(functions, context, aws):
    handler = functions("compat_254sms").handler

    @SETTINGS
    @given(mutated(COMPAT))
    def send(body):
        event = api_event("POST", "/v1/compat/254sms/sendsms", body=_raw(body), tenant=None,
                          headers={"Authorization": ""})
        assert_answered(handler(event, context), compat=True)

    send()


@pytest.mark.parametrize("method, resource, parameter, function", [
    ("GET", "/v1/messages/{message_id}", "message_id", "status"),
    ("DELETE", "/v1/messages/{message_id}", "message_id", "cancel"),
    ("GET", "/v1/batches/{batch_id}", "batch_id", "status"),
    ("GET", "/v1/suppressions/{number}", "number", "suppressions"),
    ("PUT", "/v1/suppressions/{number}", "number", "suppressions"),
    ("DELETE", "/v1/suppressions/{number}", "number", "suppressions"),
])
def test_the_routes_with_a_path_parameter_never_answer_5xx(functions, context, aws, method, resource, parameter,
                                                           function):
    handler = functions(function).handler

    @SETTINGS
    @given(st.one_of(st.text(max_size=80), HOSTILE_TEXT), st.one_of(st.none(), ANY_JSON))
    def call(value, body):
        event = api_event(method, resource.replace("{" + parameter + "}", value), resource=resource,
                          path_parameters={parameter: value}, body=None if body is None else _raw(body))
        assert_answered(handler(event, context))

    call()


def test_the_suppression_list_never_answers_5xx_whatever_its_query(functions, context, aws):
    handler = functions("suppressions").handler

    @SETTINGS
    @given(st.dictionaries(st.sampled_from(["limit", "cursor", "next", "number", "x"]),
                           st.one_of(st.text(max_size=60), HOSTILE_TEXT), max_size=3))
    def list_them(query):
        event = api_event("GET", "/v1/suppressions", resource="/v1/suppressions")
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
        assert_answered(handler(event, context))

    list_them()


def test_the_webhook_never_answers_5xx(aws):
    from aws_lambda_powertools.utilities import parameters

    from conftest import CONFIG_PATH

    aws.ssm.put_parameter(Name=f"{CONFIG_PATH}/webhook/sayasms_token", Value=TOKEN, Type="SecureString")
    parameters.clear_caches()
    handler = load("webhook").handler

    @SETTINGS
    @given(mutated(REPORT), st.one_of(st.none(), st.text(max_size=40), HOSTILE_TEXT))
    def report(body, ref):
        event = url_event(_raw(body), TOKEN)
        if ref is not None:
            event["queryStringParameters"]["ref"] = ref
        assert_answered(handler(event, Context()))

    report()


# --- the queue: producers put jobs on it ------------------------------------------------------------

def test_a_job_on_the_queue_parses_or_is_malformed_never_anything_else():
    """A job that raised anything but MalformedJob would be retried until the queue gives up on
    it, with no reason a producer can read; a malformed one goes to the DLQ at once, its reason
    with it (functions/sender/app.py)."""
    from test_jobs import JOB, PRODUCER_JOB
    from tuma.domain.jobs import MalformedJob, parse_job

    @settings(SETTINGS, max_examples=400)
    @given(st.one_of(mutated(JOB), mutated(PRODUCER_JOB)))
    def parse(document):
        try:
            parse_job(_raw(document), "059f36b4-87a3-44ab-83d2-661975830a7d")
        except MalformedJob:
            pass

    parse()


def test_the_sender_settles_every_job_a_producer_may_send(functions, context, aws, simsaya, sim254):
    """Each job is sent, or dead-lettered as malformed: the sender never fails the batch for it
    (a failure is a retry, and a job that fails every time only reaches the DLQ much later)."""
    from conftest import sqs_event
    from test_jobs import PRODUCER_JOB

    handler = functions("sender").handler

    @settings(SETTINGS, max_examples=60)
    @given(mutated(PRODUCER_JOB))
    def send(document):
        assert handler(sqs_event([_raw(document)]), context) == {"batchItemFailures": []}

    send()


# --- the authorizer: every request's first door ---------------------------------------------------

def test_the_authorizer_allows_or_denies_whatever_the_header(functions, context, aws):
    """An authorizer that raises is a 500 for the caller (API Gateway's, not ours): every header
    value is answered with a policy."""
    handler = functions("authorizer").handler
    method_arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/test/POST/v1/messages"

    @SETTINGS
    @given(st.one_of(st.text(max_size=200), HOSTILE_TEXT,
                     st.one_of(st.text(max_size=60), HOSTILE_TEXT).map(lambda key: f"Bearer {key}")))
    def authorize(header):
        policy = handler({"type": "TOKEN", "authorizationToken": header, "methodArn": method_arn}, context)
        assert policy["policyDocument"]["Statement"][0]["Effect"] in ("Allow", "Deny")

    authorize()


@pytest.mark.parametrize("path, function, valid", [("/v1/messages", "send", SEND), ("/v1/messages/bulk", "bulk", BULK)])
def test_the_sending_routes_never_answer_5xx_whatever_their_headers(functions, context, aws, path, function, valid):
    handler = functions(function).handler
    names = st.sampled_from(["Idempotency-Key", "idempotency-key", "Content-Type", "X-Tuma-Debug"])

    @SETTINGS
    @given(st.dictionaries(names, st.one_of(st.text(max_size=300), HOSTILE_TEXT), max_size=3))
    def accept(headers):
        assert_answered(handler(api_event("POST", path, body=_raw(valid), headers=headers), context))

    accept()
