"""Batch progress from counters on the deployed template (issue 12): the counts follow the sender
and the delivery reports, and agree with the messages themselves."""

from __future__ import annotations

import time

from conftest import Client


def wait_for(client: Client, batch_id: str, done, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        view = client.get(f"/v1/batches/{batch_id}").json()
        if done(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def test_a_batchs_counts_follow_the_sender_and_the_delivery_reports(client, sayasms):
    sayasms.callbacks(enabled=True, duplicate=True)  # every report twice: counted once
    answer = client.post("/v1/messages/bulk", {"from": "SHOP", "provider": "sayasms", "messages": [
        {"to": f"07{22000000 + i}", "body": f"Hello {i}"} for i in range(20)]})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]

    view = wait_for(client, batch_id, lambda v: v["counts"].get("delivered") == 20)

    assert view["counts"] == {"delivered": 20} and view["done"], view
    assert view["total_cost"] == "KES 18.00" and view["estimated_cost"] == "KES 0.00"
    statuses = {client.get(f"/v1/messages/{batch_id}_{i}").json()["status"] for i in range(1, 21)}
    assert statuses == {"delivered"}
