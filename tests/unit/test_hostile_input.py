"""Hostile input that gave a 5xx (or a 202 and then a stuck send) on 79cde19: each is now a 4xx in
Tuma's error shape, checked before anything is stored or queued (issue 10, issue 9 item 8)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from conftest import REPO, api_event
from tuma.domain.jobs import parse_job

GOOD = {"to": ["0712345678"], "from": "TUMA", "body": "Habari"}
BULK = {"from": "TUMA", "messages": [{"to": "0712345678", "body": "Habari"}]}
ROUTES = {"/v1/messages": ("send", GOOD), "/v1/messages/estimate": ("send", GOOD), "/v1/messages/bulk": ("bulk", BULK)}


def answer(response: dict) -> tuple[int, dict]:
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def post(functions, context, aws):
    def call(path: str, body, tenant: str = "tenant-a", **event) -> tuple[int, dict]:
        name = ROUTES[path][0]
        return answer(functions(name).handler(api_event("POST", path, body=body, tenant=tenant, **event), context))
    return call


def assert_refused(status: int, body: dict, code: str | None = None, field: str | None = None) -> None:
    assert 400 <= status < 500, (status, body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code
    if field:
        assert field in [d["field"] for d in body["error"]["details"]], body


# --- callback_url: parseability, length, scheme and characters -----------------------------------

UNREADABLE_URLS = ["http://[", "http://[::1", "http://a\u2100b/", "http://example.com:99999/", "http://:80/"]
SCHEMA_REFUSED_URLS = ["HTTPS://example.com/hook", " https://example.com/hook", "\thttps://example.com/hook",
                       "https://example.com/hook\n", "https://exa mple.com/", "https://example.com/\uffff",
                       "https://ex\u00e4mple.com/"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("url", UNREADABLE_URLS + SCHEMA_REFUSED_URLS)
def test_a_callback_url_tuma_cannot_read_or_carry_is_a_400_on_every_accepting_route(post, aws, path, url):
    status, body = post(path, {**ROUTES[path][1], "callback_url": url})

    assert_refused(status, body, "invalid_request", "callback_url")
    assert aws.items() == [] and aws.receive(aws.queue_url) == []


@pytest.mark.parametrize("size", [2049, 80_000, 400_000])
def test_a_callback_url_over_2048_characters_is_a_400_not_a_job_over_sqs_limit(post, aws, size):
    url = "https://example.com/" + "a" * (size - len("https://example.com/"))
    messages = [{"to": f"07{12000000 + i}", "body": "x" * 160} for i in range(1000)]

    status, body = post("/v1/messages/bulk", {"from": "TUMA", "messages": messages, "callback_url": url})

    assert_refused(status, body, "invalid_request", "callback_url")
    assert "2048" in body["error"]["message"]
    assert aws.items() == []


def test_a_2048_character_callback_url_is_accepted_and_every_job_fits_sqs_and_the_schema(post, aws):
    """The largest job Tuma can make: 1,000 personalised bodies of the maximum length, the
    longest callback_url and tenant id. It must be on the queue (moto enforces 256 KiB) and parse."""
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    tenant = "t" * 128
    messages = [{"to": f"07{12000000 + i}", "body": "中" * 402} for i in range(2000)]  # 6 UCS-2 parts, 3 bytes each

    status, body = post("/v1/messages/bulk", {"from": "TUMA", "messages": messages, "callback_url": url},
                        tenant=tenant)

    assert status == 202, body
    queued = aws.receive(aws.queue_url)
    assert sum(len(json.loads(m["Body"])["recipients"]) for m in queued) == 2000
    for message in queued:
        assert len(message["Body"].encode()) < 256 * 1024
        assert parse_job(message["Body"], message["MessageId"]).callback_url == url


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://127.0.0.1:8080/cb?x=1", "https://[::1]:8443/a",
                                 "https://xn--exmple-cua.com/%C3%A4?q=a%20b#frag"])
def test_what_the_api_accepts_as_callback_url_the_sender_accepts(post, aws, url):
    status, _ = post("/v1/messages", {**GOOD, "callback_url": url})

    assert status == 202
    (message,) = aws.receive(aws.queue_url)
    assert parse_job(message["Body"], message["MessageId"]).callback_url == url


# --- characters SQS cannot carry ----------------------------------------------------------------

@pytest.mark.parametrize("character", ["\uffff", "\ufffe", "\u0000", "\u0008", "\u001b"])
def test_a_body_with_a_character_sqs_refuses_is_a_400_before_anything_is_stored(post, aws, character):
    status, body = post("/v1/messages", {**GOOD, "body": f"Habari {character} rafiki"})

    assert_refused(status, body, "invalid_request", "body")
    assert f"U+{ord(character):04X}" in body["error"]["details"][0]["reason"]
    assert aws.items() == [] and aws.receive(aws.queue_url) == []


def test_a_bulk_entry_with_a_character_sqs_refuses_is_rejected_and_the_rest_is_queued(post, aws):
    status, body = post("/v1/messages/bulk", {"from": "TUMA", "messages": [
        {"to": "0712345678", "body": "bad \uffff"}, {"to": "0722111222", "body": "good"}]})

    assert status == 202
    assert [(r["index"], "U+FFFF" in r["reason"]) for r in body["rejected"]] == [(0, True)]
    (message,) = aws.receive(aws.queue_url)
    assert [r["body"] for r in json.loads(message["Body"])["recipients"]] == ["good"]


def test_a_template_variable_with_a_character_sqs_refuses_rejects_that_entry(post, aws):
    status, body = post("/v1/messages/bulk", {"from": "TUMA", "template": "Hi {name}", "recipients": [
        {"to": "0712345678", "vars": {"name": "\ufffe"}}, {"to": "0722111222", "vars": {"name": "Amina"}}]})

    assert status == 202
    assert [r["index"] for r in body["rejected"]] == [0]
    assert len(aws.receive(aws.queue_url)) == 1


def test_a_bulk_whose_every_entry_holds_such_a_character_is_a_400(post, aws):
    status, body = post("/v1/messages/bulk", {"from": "TUMA", "messages": [{"to": "0712345678", "body": "\uffff"}]})

    assert_refused(status, body, "no_sendable_message")
    assert aws.items() == []


def test_junk_keys_in_10000_bulk_entries_do_not_swell_a_stored_chunk_past_dynamodb_item_limit(post, aws):
    junk = "k" * 2000  # 1,000 entries of a chunk × 2 KB of reason each would be a 2 MB item
    messages = [{"to": f"07{12000000 + i}", "body": "hi", junk: 1} for i in range(1500)]
    messages.append({"to": "0799000000", "body": "hi"})

    status, body = post("/v1/messages/bulk", {"from": "TUMA", "messages": messages})

    assert status == 202, body
    assert len(body["rejected"]) == 1500 and all(len(r["reason"]) <= 200 for r in body["rejected"])


# --- the body itself --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ROUTES)
def test_a_body_that_is_not_utf8_is_a_400(post, aws, functions, context, path):
    event = api_event("POST", path, body=base64.b64encode(b'{"from": "T\xff\xfe"}').decode())
    event["isBase64Encoded"] = True

    status, body = answer(functions(ROUTES[path][0]).handler(event, context))

    assert_refused(status, body, "invalid_encoding")


# --- tenant ids the job schema refuses --------------------------------------------------------

@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("tenant", ["ac me", "acme#M#x", "t" * 129, "acme\n", "ákmé"])
def test_a_tenant_whose_id_the_job_schema_refuses_gets_a_403_not_a_stuck_send(post, aws, path, tenant):
    status, body = post(path, ROUTES[path][1], tenant=tenant)

    assert status == 403
    assert_refused(status, body, "invalid_tenant")
    assert aws.items() == [] and aws.receive(aws.queue_url) == []


@pytest.mark.parametrize("tenant", ["ac me", "acme#1", "t" * 129])
def test_create_api_key_refuses_a_tenant_id_the_job_schema_refuses(tenant):
    # It stops before any AWS call: no stack, no credentials are needed to see the refusal.
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "create_api_key.py"), "--tenant", tenant],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})

    assert run.returncode == 2
    assert "--tenant must be" in run.stderr
