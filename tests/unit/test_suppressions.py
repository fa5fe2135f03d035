"""Opt-outs: the suppression routes, and a suppressed number `rejected` with reason `suppressed`
in a send, a bulk send and a producer's job, before any provider call."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import api_event, sqs_event
from tuma.store import suppressions as suppression_list
from tuma.store.table import table

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def answer(response: dict) -> tuple[int, dict]:
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


@pytest.fixture
def call(functions, context, aws):
    routes = functions("suppressions")

    def request(method: str, path: str, body=None, tenant="tenant-a", query=None):
        number = path.removeprefix("/v1/suppressions").strip("/") or None
        event = api_event(method, path, body=body, tenant=tenant,
                          resource="/v1/suppressions/{number}" if number else "/v1/suppressions",
                          path_parameters={"number": number} if number else None)
        event["queryStringParameters"] = query
        return answer(routes.handler(event, context))
    return request


@pytest.fixture
def post(functions, context, aws):
    def request(path: str, body: dict, function: str):
        return answer(functions(function).handler(api_event("POST", path, body=body), context))
    return request


def test_a_number_put_in_any_written_form_is_on_the_list_until_deleted(call):
    status, body = call("PUT", "/v1/suppressions/0712345678", {"reason": "replied STOP"})
    assert status == 200 and body["number"] == "+254712345678" and body["reason"] == "replied STOP"
    assert call("GET", "/v1/suppressions/%2B254712345678")[1]["number"] == "+254712345678"
    assert call("GET", "/v1/suppressions/254712345678")[0] == 200
    assert call("GET", "/v1/suppressions/0712345678", tenant="tenant-b")[0] == 404  # per tenant
    assert call("DELETE", "/v1/suppressions/712345678") == (200, {"number": "+254712345678", "suppressed": False})
    assert call("GET", "/v1/suppressions/0712345678")[0] == 404
    assert call("DELETE", "/v1/suppressions/0712345678")[0] == 404


@pytest.mark.parametrize("path, body, field", [
    ("/v1/suppressions/12345", None, "number"),
    ("/v1/suppressions/0712345678", {"reason": ""}, "reason"),
    ("/v1/suppressions/0712345678", {"why": "x"}, "why"),
    ("/v1/suppressions/0712345678", [1], None),
])
def test_a_bad_number_or_body_is_a_400_in_tumas_error_shape(call, path, body, field):
    status, answer_body = call("PUT", path, body)
    assert status == 400 and set(answer_body["error"]) == {"code", "message", "details"}
    if field:
        assert answer_body["error"]["details"][0]["field"] == field


def test_the_list_is_paged_with_an_opaque_cursor_and_holds_only_the_tenants_numbers(call):
    numbers = [f"+2547123456{i:02d}" for i in range(5)]
    for number in numbers:
        call("PUT", f"/v1/suppressions/{number}")
    call("PUT", "/v1/suppressions/0799999999", tenant="tenant-b")
    seen, cursor, pages = [], None, 0
    while True:
        status, page = call("GET", "/v1/suppressions", query={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200 and len(page["suppressions"]) <= 2
        seen += [s["number"] for s in page["suppressions"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == numbers and pages >= 3
    assert call("GET", "/v1/suppressions", query={"cursor": "garbage!"})[0] == 400
    assert call("GET", "/v1/suppressions", query={"limit": "0"})[0] == 400
    assert call("GET", "/v1/suppressions", query={"limit": "1001"})[0] == 400


@pytest.mark.parametrize("query", [{"limit": "\u00b2"}, {"limit": "\u0661"}, {"limit": "1" * 5000},
                                   {"cursor": base64.urlsafe_b64encode("+\u00b2".encode()).decode()}])
def test_a_limit_or_cursor_of_digits_int_refuses_is_a_400_not_a_500(call, query):
    """Found by tests/unit/test_fuzz_doors.py: str.isdigit() takes "\u00b2" and Arabic-Indic digits,
    and int() refuses those and any string of over 4,300 digits."""
    status, body = call("GET", "/v1/suppressions", query=query)
    assert status == 400 and body["error"]["code"] == "invalid_request", body


def test_a_suppressed_number_in_a_send_is_rejected_and_never_queued(call, post, aws):
    call("PUT", "/v1/suppressions/0722111222")
    status, body = post("/v1/messages", {"to": ["0712345678", "+254722111222"], "from": "SHOP", "body": "Hi"}, "send")
    assert status == 202
    assert [(r["status"], r.get("reason")) for r in body["recipients"]] == [("queued", None), ("rejected", "suppressed")]
    [job] = [json.loads(m["Body"]) for m in aws.receive(aws.queue_url)]
    assert [r["number"] for r in job["recipients"]] == ["+254712345678"]


def test_a_send_to_only_suppressed_numbers_is_a_400(call, post, aws):
    call("PUT", "/v1/suppressions/0722111222")
    status, body = post("/v1/messages", {"to": ["0722111222"], "from": "SHOP", "body": "Hi"}, "send")
    assert status == 400 and body["error"]["code"] == "no_sendable_recipient"
    assert body["error"]["details"] == [{"field": "to[0]", "reason": "suppressed"}]
    assert aws.receive(aws.queue_url) == []


def test_the_estimate_counts_a_suppressed_number_as_rejected(call, post):
    call("PUT", "/v1/suppressions/0722111222")
    status, body = post("/v1/messages/estimate", {"to": ["0712345678", "0722111222"], "from": "SHOP", "body": "Hi"},
                        "send")
    assert status == 200 and body["sendable"] == 1 and body["rejected"][0]["reason"] == "suppressed"


def test_a_10000_message_bulk_checks_the_list_in_100_batch_gets_not_10000_reads(call, post, aws):
    for number in ("+254712000017", "+254712009999"):
        call("PUT", f"/v1/suppressions/{number}")
    calls: list[str] = []
    client = table().meta.client
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    messages = [{"to": f"+2547{12000000 + i}", "body": f"Hi {i}"} for i in range(10_000)]
    status, body = post("/v1/messages/bulk", {"from": "SHOP", "messages": messages}, "bulk")
    assert status == 202
    assert {(r["index"], r["reason"]) for r in body["rejected"]} == {(17, "suppressed"), (9999, "suppressed")}
    assert calls.count("BatchGetItem") == 100
    assert "GetItem" not in calls and "Query" not in calls


def test_a_producers_job_to_a_suppressed_number_is_rejected_before_the_provider_call(call, functions, context, aws,
                                                                                    simsaya, sim254):
    call("PUT", "/v1/suppressions/0722111222")
    job = {"version": 1, "tenant_id": "tenant-a", "from": "SHOP", "provider": "sayasms", "body": "Hi",
           "recipients": [{"number": "0712345678"}, {"number": "0722111222"}]}
    functions("sender").handler(sqs_event([json.dumps(job)]), context)
    sent = [m["to"] for m in simsaya.messages()]
    assert sent == ["+254712345678"]
    items = [i for i in aws.items() if i["sk"].startswith("R#")]
    assert {(i["sk"], i["status"], i.get("reason")) for i in items} >= {("R#000002", "rejected", "suppressed")}


def test_a_suppression_lookup_of_no_numbers_makes_no_call(aws):
    assert suppression_list.suppressed("tenant-a", []) == set()
