"""The pure rules of delivery reports and client callbacks (no AWS)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tuma.domain import callbacks, reports, status
from tuma.domain.reports import MalformedReport, MessageRef, Report, parse_report
from tuma.store.callbacks import message_change
from tuma.store.table import recipient_pk

AT = "2026-03-13T14:30:00.000Z"
NOW = datetime(2026, 3, 13, 14, 30, tzinfo=timezone.utc)


def payload(event: str = "message.delivered", **extra) -> dict:
    body = {"event": event, "message_id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1", "to": "+254712345678",
            "status": event.removeprefix("message.")}
    if event == "message.delivered":
        body |= {"network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z", "latency_ms": 2489}
    return body | extra


# --- parsing -------------------------------------------------------------------------------------

def test_the_documented_delivered_payload_parses_with_its_details():
    report = parse_report(payload(), AT)

    assert report.status == "delivered" and report.key == "message.delivered"
    assert report.provider_message_id == "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1"
    assert report.details == {"network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z", "latency_ms": 2489}
    assert report.received_at == AT


@pytest.mark.parametrize("event, tuma_status", [("message.queued", "sent"), ("message.sent", "sent"),
                                                ("message.delivered", "delivered"), ("message.failed", "failed")])
def test_each_event_means_a_tuma_status(event, tuma_status):
    assert parse_report(payload(event), AT).status == tuma_status


def test_failed_keeps_its_reason_or_says_there_was_none():
    assert parse_report(payload("message.failed", reason="absent subscriber"), AT).details == {"reason": "absent subscriber"}
    assert "no reason" in parse_report(payload("message.failed"), AT).details["reason"]


def test_the_number_is_not_kept():
    assert "+254712345678" not in repr(parse_report(payload(), AT).to_item())


@pytest.mark.parametrize("body, says", [
    ([], "JSON object"),
    ({"message_id": "x"}, "`event`"),
    (payload(event="message.read"), "`event`"),
    (payload(message_id=""), "`message_id`"),
    (payload(message_id=7), "`message_id`"),
    (payload(status="failed"), "`status`"),
    (payload(latency_ms="2489"), "`latency_ms`"),
    (payload(latency_ms=True), "`latency_ms`"),
    (payload(network=["Safaricom"]), "`network`"),
    (payload("message.failed", reason=3), "`reason`"),
])
def test_malformed_reports_are_refused_naming_the_field(body, says):
    with pytest.raises(MalformedReport, match=says):
        parse_report(body, AT)


def test_a_parked_report_comes_back_the_same():
    report = parse_report(payload(), AT)
    item = report.to_item() | {"details": {**report.details, "latency_ms": Decimal(2489)}}
    assert Report.from_item(item) == report


# --- the status machine --------------------------------------------------------------------------

def test_expired_replaces_sent_and_gives_way_to_a_final_report():
    assert status.may_move("sent", "expired")
    assert status.may_move("expired", "delivered") and status.may_move("expired", "failed")
    assert not status.may_move("expired", "sent")
    assert not status.may_move("delivered", "expired") and not status.may_move("failed", "expired")
    assert "expired" in status.earlier_than("delivered")
    assert "expired" not in status.earlier_than("sent")


# --- whichever side comes second applies the report -------------------------------------------------

class FakeStore:
    """In memory, with the forward-only rule of the real store: a report that moves nothing on
    writes nothing."""

    def __init__(self):
        self.mappings: dict[str, MessageRef] = {}
        self.parked_reports: dict[tuple[str, str], Report] = {}
        self.status = "sent"
        self.seen: list[str] = []
        self.history: list[str] = []

    def mapping(self, provider_message_id, consistent=True, report_ref=None):
        return self.mappings.get(provider_message_id)

    def map(self, provider_message_id, ref, now):
        self.mappings[provider_message_id] = ref

    def park(self, report, now):
        self.parked_reports.setdefault((report.provider_message_id, report.key), report)

    def parked(self, provider_message_id):
        return reports.by_arrival(r for (pid, _), r in self.parked_reports.items() if pid == provider_message_id)

    def unpark(self, report):
        self.parked_reports.pop((report.provider_message_id, report.key), None)

    def apply(self, ref, report, now):
        if status.may_move(self.status, report.status):
            self.status = report.status
            self.history.append(report.event)
            return "applied"
        return "duplicate" if self.status == report.status else "late"


REF = MessageRef("acme", "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4", 1)
PID = "msg_SAYA_1"


@pytest.mark.parametrize("order", list(itertools.permutations(
    ["link", "message.queued", "message.sent", "message.delivered", "message.delivered"])))
def test_every_order_of_reports_and_the_senders_link_ends_delivered_with_each_event_once(order):
    store = FakeStore()
    for step, what in enumerate(order):
        if what == "link":
            reports.link(PID, REF, store, NOW)
        else:
            report = parse_report(payload(what, message_id=PID), f"2026-03-13T14:30:0{step}.000Z")
            assert reports.receive(report, store, NOW) in {"applied", "late", "duplicate", "parked", "unchanged"}

    assert store.status == "delivered"
    assert store.history == ["message.delivered"]  # queued and sent change nothing: never written
    assert store.parked_reports == {}


def test_a_report_parked_while_the_sender_maps_is_applied_by_the_webhook():
    """The interleaving where the mapping appears between the webhook's park and its second read."""
    store = FakeStore()
    original_park = store.park

    def park_then_sender_maps(report, now):
        original_park(report, now)
        store.map(PID, REF, now)  # the sender wrote its mapping, and read no parked report yet

    store.park = park_then_sender_maps
    report = parse_report(payload("message.delivered", message_id=PID), AT)

    assert reports.receive(report, store, NOW) == "applied"
    assert store.status == "delivered" and store.parked_reports == {}


# --- client callbacks ----------------------------------------------------------------------------

def image(**fields) -> dict:
    return {"pk": recipient_pk("acme", "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4", 1), "sk": "R#000001", "status": "sent",
            "message_id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1", "provider": "sayasms", "number": "+254712345678",
            "callback_url": "https://client.example/hooks", "updated_at": AT, **fields}


def test_a_status_change_becomes_one_callback_job_without_the_number():
    job = callbacks.callback_job(message_change(image(status="sent"), image(status="delivered", network="Safaricom",
                                                                         latency_ms=Decimal(2489))))

    assert job["tenant_id"] == "acme" and job["callback_url"] == "https://client.example/hooks"
    assert job["payload"] == {
        "id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1:delivered", "type": "message.status",
        "message_id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1", "request_id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4",
        "status": "delivered", "previous_status": "sent", "at": AT, "provider": "sayasms",
        "network": "Safaricom", "latency_ms": 2489}


@pytest.mark.parametrize("old, new", [
    (image(), image(history=["a late report"])),  # status unchanged
    (None, image(status="sending")),  # internal
    (image(), image(status="delivered", callback_url=None)),  # no callback_url
    (image(), image(status="delivered", sk="REQ")),  # not a recipient
    (image(), None),  # removed
])
def test_nothing_to_tell(old, new):
    assert callbacks.callback_job(message_change(old, new)) is None


def test_a_signature_verifies_and_a_changed_body_or_old_timestamp_does_not():
    body = callbacks.body_of({"status": "delivered", "id": "x"})
    header = callbacks.signature("whsec_s3cret", 1_700_000_000, body)

    assert header.startswith("t=1700000000,v1=")
    assert callbacks.verify("whsec_s3cret", header, body, now=1_700_000_100)
    assert not callbacks.verify("whsec_other", header, body, now=1_700_000_100)
    assert not callbacks.verify("whsec_s3cret", header, body.replace("delivered", "failed"), now=1_700_000_100)
    assert not callbacks.verify("whsec_s3cret", header, body, now=1_700_000_000 + 301)
    assert not callbacks.verify("whsec_s3cret", "garbage", body, now=1_700_000_000)


def test_retries_back_off_exponentially_up_to_twelve_hours():
    assert [callbacks.retry_delay(n, 30) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert callbacks.retry_delay(30, 30) == 43_200


def test_the_sample_verifier_in_the_docs_accepts_tumas_signature():
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "callbacks.md").read_text()
    namespace: dict = {}
    exec(re.search(r"```python\n(.*?)```", doc, re.S).group(1), namespace)  # noqa: S102 - our own doc
    verify_tuma_callback = namespace["verify_tuma_callback"]
    body = callbacks.body_of({"id": "msg_X_1:delivered", "status": "delivered"})
    header = callbacks.signature("whsec_s3cret", int(time.time()), body)

    assert verify_tuma_callback("whsec_s3cret", header, body.encode())
    assert not verify_tuma_callback("whsec_other", header, body.encode())
    assert not verify_tuma_callback("whsec_s3cret", header, body.encode() + b" ")
