"""Every item a message's life writes is removed by the table's TTL (`expires_at`), so that
`RetentionDays` bounds what the table keeps and bills: only the kinds of item that are meant to
stay (tenants' secrets and keys, suppression lists, the providers' circuit, the expirer's cursor)
have none. Found missing on a batch's progress counters by bench/costs.py's storage scan."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from test_scheduling_handlers import (  # noqa: F401 (fixtures)
    delete, get, post, release, scheduled_send, scheduler, sender)
from tuma.domain import reports
from tuma.domain.reports import parse_report
from tuma.store.reports import DynamoReportStore, expire_due
from tuma.store.table import RETENTION_DAYS, recipient_key

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def kept_for_good(item: dict) -> bool:
    pk = item["pk"]
    return (pk.startswith(("TENANT#", "KEY#", "PROVIDER#")) or (pk.startswith("T#") and pk.endswith("#S"))
            or (pk, item["sk"]) == ("DUE", "CURSOR"))


def test_every_item_a_messages_life_writes_expires(post, delete, get, release, sender, aws):
    held = scheduled_send(post)                                    # a scheduled send, released
    assert release(held["message_id"]) == "released"
    code, bulk = post("/v1/messages/bulk", {"from": "SHOP", "messages": [  # a batch, one message cancelled
        {"to": f"07{12000000 + i}", "body": f"Hello {i}"} for i in range(12)]})
    assert code == 202, bulk
    assert delete(f"{bulk['batch_id']}_3")[0] == 200
    code, gone = post("/v1/messages", {"to": ["0733000111"], "from": "SHOP", "body": "Never mind"})
    assert delete(gone["message_id"])[0] == 200                   # a whole request cancelled
    code, single = post("/v1/messages", {"to": ["0711000222"], "from": "SHOP", "body": "Your code is 1234",
                                         "callback_url": "https://client.example/hooks"})
    assert code == 202, single
    assert sender([m["Body"] for m in aws.receive(aws.queue_url)]) == {"batchItemFailures": []}

    now = datetime.now(timezone.utc)
    for index in (1, 2):                                          # two final reports applied
        found = aws.table.get_item(Key=recipient_key("tenant-a", bulk["batch_id"], index))["Item"]
        event = parse_report({"event": "message.delivered", "message_id": found["provider_message_id"]},
                             "2026-12-03T00:00:00.000Z")
        assert reports.receive(event, DynamoReportStore(), now) == "applied"
    early = parse_report({"event": "message.failed", "message_id": "msg_NOT_LINKED_YET"}, "2026-12-03T00:00:00.000Z")
    assert reports.receive(early, DynamoReportStore(), now) == "parked"  # one before its link
    expire_due(now + timedelta(days=3), lambda: 60.0, timedelta(hours=48))  # the rest expire
    assert get(bulk["batch_id"])[1]["counts"]["expired"] > 0

    items = aws.items()
    assert len(items) > 30
    without = [(i["pk"], i["sk"]) for i in items if "expires_at" not in i and not kept_for_good(i)]
    assert without == []
    latest = (now + timedelta(days=RETENTION_DAYS + 1)).timestamp()
    assert all(int(i["expires_at"]) <= latest for i in items if "expires_at" in i)
