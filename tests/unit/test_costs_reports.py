"""What delivery reports, expiry and logs cost (issue 12): a report that changes nothing writes
nothing, the expirer writes only to messages still waiting, the sender looks up only the parked
reports that can exist, and the template's defaults keep logs, traces and stream invocations
cheap. Each test counts the AWS requests a path makes (moto; a botocore hook)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import table_hook
from test_delivery_reports_store import (  # noqa: F401 (fixtures)
    NOW, PID, recipient, report, send, sender, sent, table)
from tuma.domain import reports
from tuma.store.reports import DynamoReportStore, expire_due

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import costs  # noqa: E402  (the bench's template reader and filter matcher)


@contextmanager
def counted():
    """The DynamoDB operations made inside the block, by name (each try counted, failed or not)."""
    calls: Counter = Counter()

    def count(model, **_):
        calls[model.name] += 1

    with table_hook("before-call.dynamodb", count):
        yield calls


def test_queued_and_sent_reports_cost_no_dynamodb_request(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    before = recipient()

    with counted() as calls:
        outcomes = [reports.receive(report(event), DynamoReportStore(), NOW)
                    for event in ("message.queued", "message.sent", "message.queued")]

    assert outcomes == ["unchanged"] * 3
    assert sum(calls.values()) == 0
    assert recipient() == before


def test_a_repeated_or_late_report_is_one_failed_conditional_write_and_changes_nothing(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    store = DynamoReportStore()
    assert reports.receive(report("message.delivered"), store, NOW) == "applied"
    after_delivery = recipient()

    with counted() as calls:
        assert reports.receive(report("message.delivered"), store, NOW) == "duplicate"
        assert reports.receive(report("message.failed", reason="absent subscriber"), store, NOW) == "late"

    assert calls == {"GetItem": 2, "UpdateItem": 2}  # a mapping read and one conditional write each
    assert recipient() == after_delivery  # no history entry either


def test_the_mapping_is_first_read_eventually_consistent(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    seen = []
    with table_hook("provide-client-params.dynamodb.GetItem",
                lambda params, **_: seen.append(params.get("ConsistentRead"))):
        reports.receive(report("message.delivered"), DynamoReportStore(), NOW)

    assert seen == [False]


def test_an_early_final_report_is_still_parked_and_applied_by_the_sender(table, sender):
    store = DynamoReportStore()

    assert reports.receive(report("message.delivered"), store, NOW) == "parked"
    # A second final report while the first waits: only the first can ever apply.
    assert reports.receive(report("message.failed", reason="x"), store, NOW) == "parked"
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})

    assert recipient()["status"] == "delivered"
    assert store.parked(PID) == []


def test_the_sender_looks_up_only_the_parked_reports_that_can_exist(table, sender):
    """For ids linked without a call reference (their own MAP item); a call block's ids need no
    look-up unless marked (test_delivery_reports_store)."""
    keys = []
    with table_hook("provide-client-params.dynamodb.BatchGetItem",
                lambda params, **_: keys.extend(k["sk"] for spec in params["RequestItems"].values()
                                                for k in spec["Keys"])):
        send(sender, {1: sent("SAYA-1"), 2: sent("SAYA-2")})

    # Two messages, one parking slot each (their final report), not one per event type.
    assert keys == ["EVT#final"] * 2


def test_the_expirer_writes_only_to_messages_still_waiting(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    reports.receive(report("message.delivered", pid="msg_SAYA_2"), DynamoReportStore(), NOW)
    delivered = recipient(2)

    with counted() as calls:
        counts = expire_due(NOW + timedelta(hours=48, seconds=1), lambda: 60.0, timedelta(hours=48))

    assert counts == {"expired": 1, "settled": 1}
    assert calls["UpdateItem"] == 1  # message 1 only; the delivered one is read, not written
    assert recipient(1)["status"] == "expired" and recipient(2) == delivered


# --- the template's cost settings ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def config():
    return costs.configuration()


def test_functions_log_warnings_only_without_platform_lines_and_with_a_retention(config):
    for name in costs.FUNCTIONS:
        assert config[name]["log_level"] == "WARNING", name
        assert not config[name]["platform_logs"], name
        assert config[name]["log_retention_days"] and config[name]["log_retention_days"] <= 90, name


def test_functions_run_on_arm64_and_are_not_traced_on_their_own(config):
    for name in costs.FUNCTIONS:
        assert config[name]["architecture"] == "arm64", name
        assert config[name]["tracing"] == "PassThrough", name


def _record(sk: str, status: str, old_status: str | None = None, callback: bool = True) -> dict:
    def image(value):
        item = {"pk": {"S": "T#acme#M#msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4#1"}, "sk": {"S": sk}, "status": {"S": value}}
        if callback:
            item["callback_url"] = {"S": "https://client.example/hooks"}
        return item

    dynamodb = {"NewImage": image(status)}
    if old_status:
        dynamodb["OldImage"] = image(old_status)
    return {"eventName": "MODIFY" if old_status else "INSERT", "dynamodb": dynamodb}


@pytest.mark.parametrize("record, passes", [
    (_record("R#000001", "sent"), True),
    (_record("R#000001", "delivered", "sent"), True),
    (_record("REQ", "queued"), False),  # the request item carries the callback_url too
    (_record("J#000000", "in_flight"), False),
    (_record("R#000001", "sending"), False),
    (_record("R#000001", "sent", callback=False), False),
])
def test_only_status_changes_that_make_a_callback_invoke_the_dispatch_function(config, record, passes):
    assert any(costs.matches(p, json.loads(json.dumps(record))) for p in config["_dispatch_filters"]) == passes


def test_storage_is_priced_for_what_a_run_added_until_each_items_ttl():
    """bench/costs.py's storage line: a new item for the months to its TTL, a grown item for its
    growth only, an item without a TTL for a year and shown apart, a shrunk one for nothing. Only
    what is kept for the retention (90 days here) would scale with another retention: not a parked
    report's 7 days, not a year without TTL."""
    now, month, day = 1_800_000_000, 30 * 86400, 86400
    before = {("a", "grown"): (300, now + 3 * month), ("a", "shrunk"): (500, now + month)}
    after = {("a", "grown"): (400, now + 3 * month), ("a", "shrunk"): (200, now + month),
             ("b", "new"): (1000, now + 3 * month), ("b", "forever"): (150, None), ("b", "parked"): (300, now + 7 * day)}
    left = costs.storage_left(before, after, now, 90)
    assert left == {"bytes": 100 + 1000 + 150 + 300, "unexpiring_bytes": 150,
                    "byte_months": pytest.approx(100 * 3 + 1000 * 3 + 150 * 12 + 300 * 7 / 30),
                    "retention_byte_months": pytest.approx(100 * 3 + 1000 * 3)}


def test_the_access_log_line_is_the_templates_format_filled_in(config):
    line = costs.access_log_line(config["_access_log_format"], "/v1/messages", {"statusCode": 202, "body": "{}"}, 35)
    entry = json.loads(line)
    assert "$context" not in line and line.endswith("\n")
    assert entry["resource"] == "/v1/messages" and entry["status"] == "202" and entry["latencyMs"] == "35"
    assert entry["tenant"] == costs.TENANT and entry["responseLength"] == "2"


def test_the_bench_reads_the_tables_backups_and_the_access_logs_retention_from_the_template(config):
    assert config["_pitr"] is True
    assert config["_access_log_retention_days"] == 30
