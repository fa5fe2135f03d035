"""End to end on the local stack: a bulk batch's recipients get their callbacks (issue 9 item 6);
a smuggling callback_url is refused at the API, and the webhook refuses oversized and non-UTF-8
bodies in Tuma's error shape (issue 10)."""

from __future__ import annotations

import json

import pytest
import requests

from test_delivery_reports import Receiver, poll
from tuma.domain.callbacks import verify


@pytest.fixture
def receiver():
    server = Receiver(failures=0)
    yield server
    server.close()


def test_a_bulk_batch_with_a_callback_url_gets_a_callback_per_recipient(stack, client, sayasms, receiver):
    messages = [{"to": "0712345601", "body": "Habari Amina"}, {"to": "0712345602", "body": "Habari Baraka"},
                {"to": "0712345603", "body": "Habari Chebet"}]
    answer = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": messages, "provider": "sayasms",
                                               "callback_url": receiver.url})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]

    accepted = poll(receiver.accepted, seconds=90, pause=0.25,
                    done=lambda got: len({json.loads(a["body"])["message_id"] for a in got}) >= 3)

    payloads = [json.loads(a["body"]) for a in accepted]
    assert {p["message_id"] for p in payloads} == {f"{batch_id}_{n}" for n in (1, 2, 3)}, receiver.attempts
    assert {p["request_id"] for p in payloads} == {batch_id}
    assert {p["status"] for p in payloads} <= {"sent", "delivered"}
    for attempt in accepted:
        assert verify(stack.signing_secret, attempt["signature"], attempt["body"], now=attempt["at"])


def test_the_api_refuses_the_runtime_api_smuggling_url_with_400(client):
    url = "http://127.0.0.1:9001\\@8.8.8.8/../2018-06-01/runtime/invocation/next"

    answer = client.post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "x", "callback_url": url})

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"][0]["field"] == "callback_url"


def test_the_webhook_answers_413_and_400_to_hostile_bodies_with_a_valid_token(stack):
    big = requests.post(stack.webhook_url, params={"token": stack.webhook_token}, timeout=30,
                        json={"event": "message.delivered", "padding": "x" * (70 * 1024)})
    binary = requests.post(stack.webhook_url, params={"token": stack.webhook_token}, timeout=30,
                           data=b'{"event": "\xff\xfe"}', headers={"Content-Type": "application/octet-stream"})

    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    assert binary.status_code == 400 and binary.json()["error"]["code"] == "invalid_report"
