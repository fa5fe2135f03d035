"""End to end on the local stack: a bulk batch's recipients get their callbacks (issue 9 item 6);
a callback never accepted ends in the callback DLQ, which an alarm watches (item 10's sibling);
a smuggling callback_url is refused at the API, and the webhook refuses oversized and non-UTF-8
bodies in Tuma's error shape (issue 10)."""

from __future__ import annotations

import json

import pytest
import requests

from test_delivery_reports import (BACKOFF_S, MAX_ATTEMPTS, QUIET_S, Receiver, assert_backed_off, callback_jobs,
                                   poll, send)
from tuma.callback_http import BUDGET_S
from tuma.domain.callbacks import retry_delay, verify


@pytest.fixture
def receiver():
    server = Receiver(failures=0)
    yield server
    server.close()


def test_a_bulk_batch_with_a_callback_url_gets_a_callback_per_recipient(stack, client, sayasms, receiver):
    # Reports on: each recipient ends `delivered`, so no later expiry run gives it an `expired`
    # callback to this receiver once it is closed.
    sayasms.callbacks()
    messages = [{"to": "0712345601", "body": "Habari Amina"}, {"to": "0712345602", "body": "Habari Baraka"},
                {"to": "0712345603", "body": "Habari Chebet"}]
    answer = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": messages, "provider": "sayasms",
                                               "callback_url": receiver.url})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]
    changes = {f"{batch_id}_{n}:{status}" for n in (1, 2, 3) for status in ("sent", "delivered")}

    accepted = poll(receiver.accepted, seconds=90, pause=0.25,
                    done=lambda got: {a["event_id"] for a in got} >= changes)

    payloads = [json.loads(a["body"]) for a in accepted]
    assert sorted(p["id"] for p in payloads) == sorted(changes), receiver.attempts
    assert {p["request_id"] for p in payloads} == {batch_id}
    for attempt in accepted:
        assert verify(stack.signing_secret, attempt["signature"], attempt["body"], now=attempt["at"])
    left = poll(lambda: callback_jobs(stack, stack.outputs["CallbackQueueUrl"], batch_id), lambda jobs: not jobs,
                seconds=QUIET_S)
    assert left == []


def test_a_callback_never_accepted_ends_in_the_callback_dlq_after_its_attempts(stack, client, sayasms):
    sayasms.callbacks()  # the message ends `delivered`: two changes, and no later `expired` one
    down = Receiver(failures=MAX_ATTEMPTS + 10)  # answers every attempt 500
    try:
        message_id = send(client, ["0712345678"], callback_url=down.url)["recipients"][0]["message_id"]
        changes = {f"{message_id}:sent", f"{message_id}:delivered"}
        # Each attempt takes at most one invocation, then waits its backoff; the last backoff ends
        # with the move to the DLQ.
        bound = sum(BUDGET_S + retry_delay(n, BACKOFF_S) for n in range(1, MAX_ATTEMPTS + 1))
        dead_letter_queue = stack.outputs["CallbackDeadLetterQueueUrl"]
        dead = poll(lambda: callback_jobs(stack, dead_letter_queue, message_id),
                    lambda jobs: {job["id"] for job in jobs} >= changes, seconds=bound, pause=0.5)

        assert sorted(job["id"] for job in dead) == sorted(changes), down.attempts
        assert all(job["receive_count"] == MAX_ATTEMPTS for job in dead)
        assert callback_jobs(stack, stack.outputs["CallbackQueueUrl"], message_id) == []
        per_change = down.by_change()
        assert {change: len(attempts) for change, attempts in per_change.items()} == dict.fromkeys(changes, MAX_ATTEMPTS)
        for attempts in per_change.values():
            assert_backed_off(attempts)
    finally:
        down.close()
    # The deployed alarm watches that queue's waiting messages (MiniStack publishes no SQS metrics,
    # so it cannot be seen firing here; tests/unit/test_dead_letters.py checks its threshold).
    queue_name = dead_letter_queue.rsplit("/", 1)[1]
    alarms = [a for a in stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
              if {"Name": "QueueName", "Value": queue_name} in a["Dimensions"]]
    assert [(a["Namespace"], a["MetricName"], a["ComparisonOperator"], a["Threshold"]) for a in alarms] == [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0)]


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
