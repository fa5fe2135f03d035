"""Segments, encoding and cost on the deployed template: POST /v1/messages/estimate, the 202 of a
send and GET of the message agree, SayaSMS charges what the estimate said, and a body over six
segments is refused by both routes."""

from __future__ import annotations

import time

import pytest

from conftest import Client

EMOJI = "\U0001F600"
LIMIT = "at most 6 segments are allowed (918 GSM-7 characters, or 402 UCS-2 units)"

CASES = [
    # (body, encoding, characters, units, segments)
    ("Hello from Tuma", "GSM-7", 15, 15, 1),
    ("Bei mpya: €5 leo tu", "GSM-7", 19, 20, 1),
    ("Oda yako {KE2041} iko tayari", "GSM-7", 28, 30, 1),
    ("Habari yako? Karibu sana, tutaonana kesho.", "GSM-7", 42, 42, 1),
    (f"Asante sana {EMOJI}{EMOJI}", "UCS-2", 14, 16, 1),
    (f"Karibu {EMOJI} " * 10, "UCS-2", 90, 100, 2),
    ("a" * 918, "GSM-7", 918, 918, 6),
]
IDS = ["plain", "euro", "brace", "swahili", "emoji", "emoji-2-parts", "918-chars"]


def send(body: str) -> dict:
    return {"to": ["0712345678", "0722111222", "12345"], "from": "TUMA", "body": body}


def wait_until(check, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


@pytest.mark.parametrize("body, encoding, characters, units, segments", CASES, ids=IDS)
def test_estimate_accept_and_status_agree(client: Client, sayasms, body, encoding, characters, units, segments):
    estimate = client.post("/v1/messages/estimate", send(body))
    assert estimate.status_code == 200, estimate.text
    estimated = estimate.json()
    assert (estimated["encoding"], estimated["characters"], estimated["units"], estimated["segments"]) == (
        encoding, characters, units, segments)
    assert (estimated["recipients"], estimated["sendable"]) == (3, 2)
    assert [r["index"] for r in estimated["rejected"]] == [2]
    assert sayasms.requests() == []  # an estimate calls no provider

    accepted = client.post("/v1/messages", send(body))
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["message_id"]
    assert (accepted.json()["encoding"], accepted.json()["segments"]) == (encoding, segments)

    view = client.wait_for(request_id, done=lambda v: v["counts"].get("sent") == 2)
    assert view["counts"] == {"sent": 2, "rejected": 1}, view
    for recipient in view["recipients"]:
        assert (recipient["encoding"], recipient["segments"]) == (encoding, segments)
    one = client.get(f"/v1/messages/{request_id}_1").json()
    assert (one["encoding"], one["segments"]) == (encoding, segments)
    # SayaSMS charged what the estimate said: its per-message cost, summed over the sendable two.
    assert [r.get("cost") for r in view["recipients"][:2]] == [f"KES {segments * 0.9:.2f}"] * 2
    assert view["total_cost"] == estimated["estimated_cost"]["sayasms"]
    assert view["estimated_cost"] == "KES 0.00"


@pytest.mark.parametrize("body, reason", [
    ("a" * 919, f"is 7 segments (GSM-7, 919 characters); {LIMIT}"),
    ("{" * 460, f"is 7 segments (GSM-7, 460 characters); {LIMIT}"),
    (EMOJI * 199, f"is 7 segments (UCS-2, 199 characters); {LIMIT}"),
], ids=["919-chars", "460-braces", "199-emoji"])
def test_a_body_over_six_segments_is_refused_by_estimate_and_send(client: Client, sayasms, body, reason):
    for path in ("/v1/messages/estimate", "/v1/messages"):
        answer = client.post(path, send(body))
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"] == [{"field": "body", "reason": reason}]
    assert sayasms.requests() == []


def test_a_batch_totals_segments_when_accepted_and_cost_when_sent(client: Client, sayasms):
    bodies = [body for body, *_ in CASES]
    messages = [{"to": f"07{12300000 + i}", "body": body} for i, body in enumerate(bodies)]
    messages.append({"to": "0712399999", "body": "b" * 919})  # rejected by index, with the limit
    answer = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": messages})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    total_segments = sum(segments for *_, segments in CASES)
    assert accepted["segments"] == total_segments
    assert accepted["rejected"] == [{"index": len(bodies), "to": "0712399999",
                                     "reason": f"body is 7 segments (GSM-7, 919 characters); {LIMIT}"}]
    batch_id = accepted["batch_id"]
    for n, (_, encoding, _, _, segments) in enumerate(CASES, start=1):
        view = client.get(f"/v1/messages/{batch_id}_{n}").json()
        assert (view["encoding"], view["segments"]) == (encoding, segments)

    done = wait_until(lambda: (v := client.get(f"/v1/batches/{batch_id}").json())["done"] and v)
    assert done, client.get(f"/v1/batches/{batch_id}").json()
    assert done["counts"] == {"sent": len(bodies), "rejected": 1}
    assert (done["total_cost"], done["estimated_cost"]) == (f"KES {total_segments * 0.9:.2f}", "KES 0.00")


def test_254sms_messages_carry_the_estimate_as_their_cost(client: Client, sms254):
    body = f"Karibu {EMOJI} " * 10  # UCS-2, 2 segments
    request = {**send(body), "provider": "254sms"}
    estimated = client.post("/v1/messages/estimate", request).json()["estimated_cost"]["254sms"]
    accepted = client.post("/v1/messages", request)
    assert accepted.status_code == 202, accepted.text

    view = client.wait_for(accepted.json()["message_id"], done=lambda v: v["counts"].get("sent") == 2)
    assert view["counts"] == {"sent": 2, "rejected": 1}, view
    assert [(r["cost"], r["cost_estimated"]) for r in view["recipients"][:2]] == [("KES 1.60", True)] * 2
    assert view["total_cost"] == estimated == "KES 3.20"
    assert len(sms254.requests("/sendsms")) == 1
