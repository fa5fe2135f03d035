"""Opt-outs on the deployed stack: a suppressed number never reaches a provider, in a send, a bulk
send or a producer's job on the queue."""

from __future__ import annotations

import json
import time

import requests

from local.stack import TENANT
from tuma.domain.ids import new_request_id

NUMBER = "+254733444555"


def test_a_suppressed_number_is_rejected_in_send_bulk_and_producer_jobs(stack, client, sayasms, sms254):
    put = client.session.put(client.base_url + "/v1/suppressions/0733444555", json={"reason": "replied STOP"},
                             timeout=30)
    assert put.status_code == 200 and put.json()["number"] == NUMBER
    assert client.get("/v1/suppressions/%2B254733444555").json()["reason"] == "replied STOP"
    assert NUMBER in [s["number"] for s in client.get("/v1/suppressions?limit=1000").json()["suppressions"]]

    send = client.post("/v1/messages", {"to": ["0712345678", NUMBER], "from": "SHOP", "body": "Sale!"}).json()
    assert [r["status"] for r in send["recipients"]] == ["queued", "rejected"]
    assert send["recipients"][1]["reason"] == "suppressed"

    bulk = client.post("/v1/messages/bulk", {"from": "SHOP", "messages": [
        {"to": "0722111222", "body": "Hi A"}, {"to": "0733444555", "body": "Hi B"}]}).json()
    assert bulk["rejected"] == [{"index": 1, "to": "0733444555", "reason": "suppressed"}]

    sqs, request_id = stack.client("sqs"), new_request_id()
    producer = {"version": 1, "tenant_id": TENANT, "request_id": request_id,
                "from": "SHOP", "body": "Hi", "recipients": [{"number": "0744555666"}, {"number": NUMBER}]}
    sqs.send_message(QueueUrl=stack.outputs["SendQueueUrl"], MessageBody=json.dumps(producer))

    assert client.wait_for(f"{send['message_id']}_1")["status"] == "sent"
    assert client.wait_for(f"{bulk['batch_id']}_1")["status"] == "sent"
    suppressed_job = client.wait_for(f"{request_id}_2", done=lambda m: m.get("status") == "rejected")
    assert suppressed_job["status"] == "rejected" and suppressed_job["reason"] == "suppressed"
    assert client.wait_for(f"{request_id}_1")["status"] == "sent"

    time.sleep(1)
    numbers_sent = [m["to"] for call in sayasms.requests() for m in call["body"].get("messages", [])]
    numbers_sent += [n for call in sayasms.requests() for n in call["body"].get("to", [])]
    numbers_sent += [p for call in sms254.requests("/sendsms") for p in call["body"]["phone"].split(",")]
    assert numbers_sent and not [n for n in numbers_sent if n.endswith("733444555")]

    # Unsuppressed: the number is sendable again.
    assert client.delete("/v1/suppressions/0733444555").status_code == 200
    again = client.post("/v1/messages", {"to": [NUMBER], "from": "SHOP", "body": "Welcome back"})
    assert again.status_code == 202 and again.json()["recipients"][0]["status"] == "queued"


def test_the_suppression_routes_need_a_key(stack):
    assert requests.put(stack.api_url + "/v1/suppressions/0733444555", timeout=30).status_code == 401
