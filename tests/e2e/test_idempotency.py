"""A client can retry safely (docs/retries.md): on the deployed template, a POST retried with the
same Idempotency-Key sends nothing new, counted in the provider simulator's records."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from conftest import Client

SEND = {"to": ["+254712345678", "+254722111222"], "from": "TUMA", "body": "Your code is 4711", "provider": "sayasms"}


def post(client: Client, path: str, body, key: str, timeout: float = 30) -> requests.Response:
    return client.session.post(client.base_url + path, json=body, headers={"Idempotency-Key": key}, timeout=timeout)


def sent_to(sim, numbers: list[str]) -> list[str]:
    """Each of `numbers` in each send call the simulator recorded (one body to many, or
    personalised), as often as it was sent."""
    wanted, found = set(numbers), []
    for call in sim.requests("/v1/messages") + sim.requests("/v1/messages/bulk"):
        body = call["body"]
        found += [n for n in body.get("to", []) if n in wanted]
        found += [m["to"] for m in body.get("messages", []) if m["to"] in wanted]
    return found


def test_a_retried_send_with_the_same_key_sends_nothing_new(client, sayasms):
    key = f"e2e-{uuid.uuid4()}"
    first = post(client, "/v1/messages", SEND, key)
    assert first.status_code == 202, first.text
    view = client.wait_for(first.json()["message_id"], done=lambda v: v["counts"].get("sent") == 2)
    assert view["counts"] == {"sent": 2}

    again = post(client, "/v1/messages", SEND, key)

    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    time.sleep(3)  # long enough for a second job to reach the simulator, had one been queued
    assert sorted(sent_to(sayasms, SEND["to"])) == sorted(SEND["to"])


def test_a_bulk_whose_answer_was_lost_is_retried_until_answered_and_sent_once(client, sayasms):
    """The client gives up before the answer (a timeout), retries with the key while the first is
    in progress (409) or done (202): every message goes out once, under one batch id."""
    key = f"e2e-{uuid.uuid4()}"
    numbers = [f"+2547{13000000 + i}" for i in range(300)]
    body = {"from": "TUMA", "provider": "sayasms",
            "messages": [{"to": n, "body": f"Hi {i}, your order is ready"} for i, n in enumerate(numbers)]}
    with pytest.raises(requests.exceptions.Timeout):
        post(client, "/v1/messages/bulk", body, key, timeout=0.05)

    deadline, answers = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        answer = post(client, "/v1/messages/bulk", body, key)
        answers.append(answer.status_code)
        if answer.status_code == 202:
            break
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "request_in_progress"
        time.sleep(0.5)
    assert answers[-1] == 202, answers
    view = _wait_batch(client, answer.json()["batch_id"], 300)
    assert view["counts"] == {"sent": 300}
    time.sleep(2)
    assert sorted(sent_to(sayasms, numbers)) == sorted(numbers)


def _wait_batch(client: Client, batch_id: str, sent: int, seconds: float = 90) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        view = client.get(f"/v1/batches/{batch_id}").json()
        if view.get("counts", {}).get("sent") == sent or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def test_the_same_key_with_another_body_is_a_422_and_sends_nothing(client, sayasms):
    key = f"e2e-{uuid.uuid4()}"
    assert post(client, "/v1/messages", SEND, key).status_code == 202

    other = post(client, "/v1/messages", {**SEND, "to": ["+254733000111"]}, key)

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    time.sleep(3)
    assert sent_to(sayasms, ["+254733000111"]) == []


def test_hostile_bodies_get_a_4xx_in_tuma_shape_on_the_deployed_stack(client, sayasms):
    for body in ({**SEND, "callback_url": "http://["}, {**SEND, "body": "Habari \uffff"},
                 {**SEND, "callback_url": "https://example.com/" + "a" * 80_000}):
        answer = client.post("/v1/messages", body)
        assert answer.status_code == 400, answer.text
        assert set(answer.json()["error"]) == {"code", "message", "details"}
    raw = client.session.post(client.base_url + "/v1/messages", data=b'{"from": "T\xff\xfe"}',
                              headers={"Content-Type": "application/json"}, timeout=30)
    assert 400 <= raw.status_code < 500, raw.text


def test_a_bulk_over_the_lambda_payload_limit_is_refused_and_sends_nothing(client, sayasms):
    """10,000 × 918 characters is about 9.5 MB, over Lambda's 6 MB invocation payload. MiniStack
    passes it to the function (AWS would refuse it before Tuma's code: README, "Limits"); Tuma
    answers 413 in its shape for any body over 5 MiB."""
    numbers = [f"+2547{14000000 + i}" for i in range(10_000)]
    body = {"from": "TUMA", "messages": [{"to": n, "body": "x" * 918} for n in numbers]}

    answer = client.session.post(client.base_url + "/v1/messages/bulk", data=json.dumps(body),
                                 headers={"Content-Type": "application/json"}, timeout=120)

    assert answer.status_code == 413, answer.text[:300]
    assert answer.json()["error"]["code"] == "payload_too_large"
    time.sleep(2)
    assert sent_to(sayasms, numbers[:50]) == []
