"""Batch progress from counters on the deployed template (issue 12): the counts follow the sender
and the delivery reports, and agree with the messages themselves."""

from __future__ import annotations

import time

import pytest

from conftest import Client


def wait_for(client: Client, batch_id: str, done, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        view = client.get(f"/v1/batches/{batch_id}").json()
        if done(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def counters(stack, monkeypatch, batch_id: str) -> tuple[dict | None, dict | None]:
    """The batch's request item and its counters summed over their shards, read from the stack's
    table by the code the batch route reads them with (tuma.store.progress)."""
    from local.stack import TENANT
    from tuma.store import progress, table

    for name, value in {**stack.aws_env(), "TABLE_NAME": stack.outputs["TableName"]}.items():
        monkeypatch.setenv(name, value)
    table.forget_clients()
    try:
        return progress.read(TENANT, batch_id)
    finally:
        table.forget_clients()


@pytest.mark.parametrize("duplicate", [False, True], ids=["each report once", "each report twice"])
def test_a_batchs_counts_follow_the_sender_and_the_delivery_reports(stack, client, sayasms, monkeypatch,
                                                                    duplicate):
    """Once: the GET answers from the counters, and they are exact. Twice (a provider resending
    reports): a report applied before takes the batch off the counters (it cannot tell a resend
    from a death between the write and the count), and its GET reads every message: still exact."""
    # 1 s between stages (`delivered` 3 s after the call): the reports come after the sender has
    # linked their ids even on a loaded machine (a report that races the link is parked, and the
    # sender and the webhook may then both apply it: off the counters, by design, and not what the
    # first case is about).
    sayasms.callbacks(enabled=True, duplicate=duplicate, delay_ms=1000)
    answer = client.post("/v1/messages/bulk", {"from": "SHOP", "provider": "sayasms", "messages": [
        {"to": f"07{22000000 + i}", "body": f"Hello {i}"} for i in range(20)]})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]

    view = wait_for(client, batch_id, lambda v: v["counts"].get("delivered") == 20)

    assert view["counts"] == {"delivered": 20} and view["done"], view
    assert view["total_cost"] == "KES 18.00" and view["estimated_cost"] == "KES 0.00"
    statuses = {client.get(f"/v1/messages/{batch_id}_{i}").json()["status"] for i in range(1, 21)}
    assert statuses == {"delivered"}
    from tuma.store import progress

    request, stored = counters(stack, monkeypatch, batch_id)
    resent = [c for c in sayasms.callback_log() if c["attempt"] > 1]
    if duplicate:
        assert stored.get("uncounted") and not progress.usable(request, stored), stored
    elif not resent:  # a report sent again (the webhook slow to answer) may take it off them too
        assert progress.usable(request, stored) and not stored.get("uncounted"), stored
        assert progress.counts(stored) == {"delivered": 20}, stored  # sent 20, moved to delivered one by one
