"""Bulk sends and the queue as a public entrance, on the deployed template."""

from __future__ import annotations

import json
import time
from collections import Counter

from conftest import Client

TEN_THOUSAND = 10_000


def wait_for_batch(client: Client, batch_id: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        view = client.get(f"/v1/batches/{batch_id}").json()
        if view.get("done") or time.monotonic() > deadline:
            return view
        time.sleep(1)


def test_ten_thousand_personalised_messages_each_reach_a_provider_exactly_once(client, sayasms):
    messages = [{"to": f"07{12000000 + i}", "body": f"Hi customer {i}, your order #KE{i:05d} is ready!"}
                for i in range(TEN_THOUSAND)]
    messages[17]["to"] = "0712"  # one bad number: rejected by index, the rest accepted

    answer = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": messages})

    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    batch_id = accepted["batch_id"]
    assert accepted["accepted"] == TEN_THOUSAND - 1
    assert accepted["rejected"] == [{"index": 17, "to": "0712", "reason": "number is not a valid phone number"}]
    # Every message answers from the moment of acceptance, by the documented id rule.
    assert client.get(f"/v1/messages/{batch_id}_{TEN_THOUSAND}").json()["number"] == "+254712009999"
    assert client.get(f"/v1/messages/{batch_id}_18").json()["status"] == "rejected"

    view = wait_for_batch(client, batch_id, seconds=600)

    assert view["counts"] == {"sent": TEN_THOUSAND - 1, "rejected": 1}, view
    assert view["total"] == TEN_THOUSAND and view["done"] is True
    sent_pairs = Counter((m["to"], m["body"]) for call in sayasms.requests("/v1/messages/bulk")
                         for m in call["body"]["messages"])
    expected = Counter((f"+2547{12000000 + i}", m["body"]) for i, m in enumerate(messages) if i != 17)
    assert sent_pairs == expected
    assert max(sent_pairs.values()) == 1
    sample = client.get(f"/v1/messages/{batch_id}_5000").json()
    assert sample["status"] == "sent" and sample["provider_message_id"].startswith("msg_")


def test_template_bulk_through_254sms_groups_shared_bodies(client, sms254):
    recipients = [{"to": f"07{22000000 + i}", "vars": {"name": "Wanjiku" if i % 2 else "Otieno"}} for i in range(6)]
    recipients.append({"to": "0722999999", "vars": {}})  # missing variable: rejected by index

    answer = client.post("/v1/messages/bulk", {"from": "MYSHOP", "template": "Habari {name}, karibu!",
                                               "recipients": recipients, "provider": "254sms"})

    assert answer.status_code == 202, answer.text
    assert answer.json()["rejected"] == [{"index": 6, "to": "0722999999", "reason": "template variable {name} is missing"}]
    view = wait_for_batch(client, answer.json()["batch_id"], seconds=60)
    assert view["counts"] == {"sent": 6, "rejected": 1}
    calls = sorted((c["body"]["message"], c["body"]["phone"]) for c in sms254.requests("/sendsms"))
    assert calls == [("Habari Otieno, karibu!", "254722000000,254722000002,254722000004"),
                     ("Habari Wanjiku, karibu!", "254722000001,254722000003,254722000005")]


def test_bulk_limits_and_errors(client):
    too_many = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": [{"to": "0712345678", "body": "x"}] * 10_001})
    assert too_many.status_code == 413
    assert "at most 10000" in too_many.json()["error"]["message"]

    nothing = client.post("/v1/messages/bulk", {"from": "MYSHOP", "messages": [{"to": "07", "body": "x"}]})
    assert nothing.status_code == 400 and nothing.json()["error"]["code"] == "no_sendable_message"

    both = client.post("/v1/messages/bulk", {"from": "MYSHOP", "template": "Hi", "messages": []})
    assert both.status_code == 400
    assert {d["field"] for d in both.json()["error"]["details"]} >= {"messages"}


def test_a_malformed_producer_job_goes_to_the_dlq_with_its_reason_and_spares_its_neighbours(stack, client, sayasms):
    sqs = stack.client("sqs")
    queue_url, dlq_url = stack.outputs["SendQueueUrl"], stack.outputs["SendDeadLetterQueueUrl"]
    good = {"version": 1, "tenant_id": "local-dev", "provider": "sayasms", "from": "PRODUCER",
            "idempotency_key": f"e2e-{time.time_ns()}",
            "body": "Sent by a producer", "recipients": [{"number": "0712345678"}, {"number": "0722111222"}]}
    malformed = {"version": 1, "tenant_id": "local-dev", "provider": "sayasms", "from": "PRODUCER", "recipients": []}

    answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
        {"Id": "good", "MessageBody": json.dumps(good)},
        {"Id": "malformed", "MessageBody": json.dumps(malformed)},
        {"Id": "not-json", "MessageBody": "this is not a job"}])
    assert not answer.get("Failed")

    parked = {}
    deadline = time.monotonic() + 60
    while len(parked) < 2 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           MessageAttributeNames=["All"]).get("Messages", []):
            parked[message["Body"]] = message["MessageAttributes"]["reason"]["StringValue"]
    assert set(parked) == {json.dumps(malformed), "this is not a job"}
    assert "recipients" in parked[json.dumps(malformed)]
    assert parked["this is not a job"].startswith("not JSON")

    from tuma.domain.jobs import producer_request_id  # the documented rule for a job without ids
    request_id = producer_request_id(good)
    view = client.wait_for(request_id, done=lambda v: v.get("counts", {}).get("sent") == 2)
    assert view["counts"] == {"sent": 2}
    assert [c["body"]["to"] for c in sayasms.requests("/v1/messages")] == [["+254712345678", "+254722111222"]]
