"""Delivery reports, expiry and signing secrets on DynamoDB (moto)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from conftest import create_table, table_hook
from tuma.domain import reports
from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.reports import MessageRef, ReportRef, parse_report
from tuma.domain.sending import Outcome
from tuma.store import reports as store_reports
from tuma.store import table as table_module
from tuma.store import tenants
from tuma.store.messages import get_message
from tuma.store.linking import ReportingMessageStore
from tuma.store.reports import DynamoReportStore, expire_due
from tuma.store.table import recipient_key

NOW = datetime(2026, 3, 13, 14, 30, tzinfo=timezone.utc)
REQUEST = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4"
JOB = SendJob(tenant_id="acme", request_id=REQUEST, provider="sayasms", sender="TUMA",
              callback_url="https://client.example/hooks", from_api=True,
              recipients=(JobRecipient(f"{REQUEST}_1", "+254712345678", "Habari"),
                          JobRecipient(f"{REQUEST}_2", "+254722111222", "Habari")))
GRACE = timedelta(seconds=30)
REF = MessageRef("acme", REQUEST, 1)
PID = "msg_SAYA_1"


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("TABLE_NAME", "tuma-test")
    from local import moto_partiql

    moto_partiql.install()  # the sender's batched INSERTs (else this file passes only after one that installs it)
    with mock_aws():
        create_table(boto3.client("dynamodb"))  # the table as conftest makes it for every unit test
        table_module.forget_clients()
        tenants._cache.clear()
        yield table_module.table()
        table_module.forget_clients()


def report(event: str, at: str = "2026-03-13T14:30:01.000Z", pid: str = PID, report_ref: str | None = None,
           **extra):
    body = {"event": event, "message_id": pid, "to": "+254712345678", **extra}
    if event == "message.delivered":
        body |= {"network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z", "latency_ms": 2489}
    return parse_report(body, at, report_ref)


def send(store: ReportingMessageStore, outcomes: dict[int, Outcome], when: datetime = NOW) -> None:
    """What the sender does: claim the job, record the provider's answers, close the claim."""
    claim = store.claim(JOB, when, GRACE)
    assert claim.to_send == list(JOB.recipients)
    store.record(JOB, claim, [(r, outcomes[r.index]) for r in JOB.recipients], when)
    store.finish(JOB, claim, [], "", when)


def sent(pid: str, report_ref: str | None = None) -> Outcome:
    return Outcome("sent", "sayasms", provider_message_id=pid, cost="KES 0.90", report_ref=report_ref)


def recipient(index: int = 1) -> dict:
    """The message item, read by its key (these jobs are recorded without the chunks a GET reads)."""
    return get_message("acme", REQUEST, index)[2]


def events(item: dict) -> list[str]:
    return [h["event"] for h in item["history"] if "event" in h]


@pytest.fixture
def sender(table):
    return ReportingMessageStore(expire_after=timedelta(hours=48))


def test_the_sender_maps_ids_copies_the_callback_url_and_schedules_expiry(table, sender):
    send(sender, {1: sent(PID), 2: Outcome("failed", "sayasms", provider_message_id="msg_SAYA_2", reason="x")})

    assert DynamoReportStore().mapping(PID) == REF
    assert DynamoReportStore().mapping("msg_SAYA_2") == MessageRef("acme", REQUEST, 2)
    assert recipient(1)["callback_url"] == "https://client.example/hooks"
    due = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "DUE#2026-03-15T14"})["Items"]
    assert [d["target_sks"] for d in due] == [["R#000001"]]  # only `sent` messages can expire


def test_a_report_is_applied_once_however_often_it_comes(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    store = DynamoReportStore()

    outcomes = [reports.receive(report("message.delivered"), store, NOW) for _ in range(3)]

    assert outcomes == ["applied", "duplicate", "duplicate"]
    item = recipient()
    assert item["status"] == "delivered" and item["network"] == "Safaricom" and item["latency_ms"] == 2489
    assert events(item) == ["message.delivered"]


@pytest.mark.parametrize("event, details", [
    ("message.delivered", {"network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z", "latency_ms": 2489}),
    ("message.failed", {"reason": "absent subscriber"})])
def test_a_reports_details_are_stored_once_and_shown_in_its_history_entry(table, sender, event, details):
    """Storage is paid for every day of the retention (issue 12): the entry a report appends does
    not repeat the provider or the details the same write puts on the item; GET shows them whole."""
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    extra = {"reason": "absent subscriber"} if event == "message.failed" else {}

    assert reports.receive(report(event, **extra), DynamoReportStore(), NOW) == "applied"

    stored = table.get_item(Key=recipient_key("acme", REQUEST, 1))["Item"]
    status = event.removeprefix("message.")
    assert stored["history"][-1] == {"status": status, "event": event, "at": "2026-03-13T14:30:01.000Z"}
    assert {name: stored[name] for name in details} == details
    assert recipient()["history"][-1] == {"status": status, "event": event, "at": "2026-03-13T14:30:01.000Z",
                                          "provider": "sayasms", **details}


def test_a_late_report_changes_nothing_and_writes_nothing(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    store = DynamoReportStore()

    assert reports.receive(report("message.delivered"), store, NOW) == "applied"
    before = recipient()
    assert reports.receive(report("message.sent"), store, NOW) == "unchanged"
    assert reports.receive(report("message.failed", reason="absent subscriber"), store, NOW) == "late"

    assert recipient() == before  # not even the history
    assert before["status"] == "delivered" and "reason" not in before
    assert events(before) == ["message.delivered"]


def test_queued_after_sent_is_unchanged_and_writes_nothing(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    before = recipient()

    assert reports.receive(report("message.queued"), DynamoReportStore(), NOW) == "unchanged"
    assert recipient() == before


def test_a_report_before_the_mapping_is_parked_then_applied_by_the_sender(table, sender):
    store = DynamoReportStore()
    early = [report("message.queued", "2026-03-13T14:30:00.100Z"), report("message.sent", "2026-03-13T14:30:00.200Z"),
             report("message.delivered", "2026-03-13T14:30:00.300Z"), report("message.delivered", "2026-03-13T14:30:00.400Z")]

    # queued and sent can change no message (it is recorded sent): not parked, nothing written.
    assert [reports.receive(r, store, NOW) for r in early] == ["unchanged", "unchanged", "parked", "parked"]
    assert store.mapping(PID) is None
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})

    item = recipient()
    assert item["status"] == "delivered"
    assert [h["status"] for h in item["history"]] == ["sending", "sent", "delivered"]
    assert events(item) == ["message.delivered"]
    assert store.parked(PID) == []


def test_a_job_taken_over_links_messages_recorded_by_a_run_that_died_before_linking(table, sender):
    from tuma.store.sending import MessageStore

    plain = MessageStore()  # records without linking, and dies before closing its claim
    claim = plain.claim(JOB, NOW, GRACE)
    assert plain.mark_calling(JOB, claim, JOB.recipients)  # then called SayaSMS
    plain.record(JOB, claim, [(JOB.recipients[0], sent(PID)), (JOB.recipients[1], sent("msg_SAYA_2"))], NOW)
    assert reports.receive(report("message.delivered"), DynamoReportStore(), NOW) == "parked"

    taken_over = sender.claim(JOB, NOW + timedelta(minutes=1), GRACE)
    assert taken_over.to_send == [] and taken_over.orphaned == list(JOB.recipients)
    unknown = Outcome("unknown", "sayasms", reason="died")
    sender.record(JOB, taken_over, [(r, unknown) for r in taken_over.orphaned], NOW + timedelta(minutes=1))

    assert recipient()["status"] == "delivered"  # its outcome was kept, and its parked report applied
    assert recipient(2)["status"] == "sent"


def test_a_claim_held_by_a_live_invocation_is_busy_and_a_dead_ones_is_taken_over(table, sender):
    """The old item comes back from the conditional failure in DynamoDB's wire shape."""
    dead = sender.claim(JOB, NOW, GRACE)
    assert sender.mark_calling(JOB, dead, JOB.recipients)  # it called the provider, then died

    assert sender.claim(JOB, NOW + timedelta(seconds=10), GRACE).state == "busy"
    assert sender.claim(JOB, NOW + timedelta(minutes=5), GRACE).orphaned == list(JOB.recipients)


# --- expiry ----------------------------------------------------------------------------------------

def test_sent_messages_expire_once_due_and_final_ones_do_not(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    reports.receive(report("message.delivered", pid="msg_SAYA_2"), DynamoReportStore(), NOW)
    forever = lambda: 60.0  # noqa: E731

    assert expire_due(NOW + timedelta(hours=47), forever, timedelta(hours=48)) == {"expired": 0, "settled": 0}
    assert recipient(1)["status"] == "sent"
    assert expire_due(NOW + timedelta(hours=48, seconds=1), forever, timedelta(hours=48)) == {"expired": 1, "settled": 1}

    assert recipient(1)["status"] == "expired"
    assert recipient(1)["history"][-1]["reason"] == "no final delivery report within 48 h"
    assert recipient(2)["status"] == "delivered"
    # Done once: the due items are gone and the cursor has moved to the current hour.
    assert expire_due(NOW + timedelta(hours=49), forever, timedelta(hours=48)) == {"expired": 0, "settled": 0}
    assert table.get_item(Key={"pk": "DUE", "sk": "CURSOR"})["Item"]["bucket"] == "2026-03-15T15"


def test_a_final_report_after_expiry_still_wins(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    expire_due(NOW + timedelta(hours=49), lambda: 60.0, timedelta(hours=48))

    assert reports.receive(report("message.failed", reason="absent subscriber"), DynamoReportStore(), NOW) == "applied"
    assert recipient(1)["status"] == "failed" and recipient(1)["reason"] == "absent subscriber"


def test_the_expirer_reads_only_buckets_from_its_cursor(table, sender, monkeypatch):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    expire_due(NOW, lambda: 60.0, timedelta(hours=48))  # first run: a week back to now
    queried: list[str] = []
    original = store_reports._expire_bucket
    monkeypatch.setattr(store_reports, "_expire_bucket",
                        lambda bucket, *args: queried.append(bucket) or original(bucket, *args))

    expire_due(NOW + timedelta(hours=3), lambda: 60.0, timedelta(hours=48))

    assert queried == ["2026-03-13T14", "2026-03-13T15", "2026-03-13T16", "2026-03-13T17"]


def test_the_expirer_stops_when_time_runs_short_and_resumes(table, sender):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})
    later = NOW + timedelta(hours=49)

    assert expire_due(later, lambda: 1.0, timedelta(hours=48)) == {"expired": 0, "settled": 0}
    assert expire_due(later, lambda: 60.0, timedelta(hours=48)) == {"expired": 2, "settled": 0}


# --- signing secrets ------------------------------------------------------------------------------

def test_a_tenant_gets_one_signing_secret(table):
    secret, created = tenants.ensure_signing_secret("acme")
    again, created_again = tenants.ensure_signing_secret("acme")

    assert created and not created_again and secret == again and secret.startswith("whsec_")
    assert tenants.signing_secret("acme") == secret
    assert tenants.signing_secret("nobody") is None


# --- call blocks (issue 12): a call's ids linked ~25 to an item, found by the callback URL's ref ----

CALL_A, CALL_B = "01HX4ZQ9GKD2VP7C9XR3MNBVA0", "01HX4ZQ9GKD2VP7C9XR3MNBVB0"  # ULIDs: two SayaSMS calls


def bulk_id(i: int) -> str:
    """An id as SayaSMS's bulk endpoint gives them: msg_<ULID>, unrelated to its neighbours'."""
    return f"msg_01JQ{i:022d}"


def big_job(request_id: str, count: int) -> SendJob:
    return SendJob(tenant_id="acme", request_id=request_id, provider="sayasms", sender="TUMA", callback_url=None,
                   from_api=True, recipients=tuple(JobRecipient(f"{request_id}_{i}", f"+2547{i:08d}", "Habari")
                                                   for i in range(1, count + 1)))


def send_job(store: ReportingMessageStore, job: SendJob, pid_of, report_ref: str | None = None,
             when: datetime = NOW) -> None:
    """The sender's record for any job, SayaSMS's id of message i being pid_of(i), from one call."""
    claim = store.claim(job, when, GRACE)
    store.record(job, claim, [(r, sent(pid_of(r.index), report_ref)) for r in claim.to_send], when)
    store.finish(job, claim, [], "", when)


def pmsg_items(table) -> list[dict]:
    return [i for i in table.scan()["Items"] if i["pk"].startswith("PMSG#")]


@contextmanager
def table_requests():
    """Each DynamoDB request made inside the block: (operation, the keys it names)."""
    seen: list[tuple[str, list[dict]]] = []

    def keep(params, model, **_):
        keys = [params["Key"]] if "Key" in params else []
        for spec in (params.get("RequestItems") or {}).values():
            keys += spec["Keys"] if isinstance(spec, dict) else [
                r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") for r in spec]
        if "Item" in params:
            keys.append(params["Item"])
        if "KeyConditionExpression" in params:
            keys.append({"pk": params["ExpressionAttributeValues"][":pk"]})
        seen.append((model.name, keys))

    with table_hook("provide-client-params.dynamodb", keep):
        yield seen


def item_bytes(item: dict) -> int:
    """An item's size as DynamoDB bills it: attribute names, then values (a number: 1 byte per two
    significant digits, plus 1; a set: its members)."""
    def value(v) -> int:
        if isinstance(v, str):
            return len(v.encode())
        if isinstance(v, (int, Decimal)):
            digits = str(abs(Decimal(v)).normalize()).replace(".", "").lstrip("0") or "0"
            return (len(digits) + 1) // 2 + 1
        if isinstance(v, (set, frozenset)):
            return sum(value(m) for m in v)
        raise TypeError(type(v))
    return sum(len(name.encode()) + value(v) for name, v in item.items())


def test_a_bulk_calls_1000_ids_cost_40_mapping_writes_and_no_parked_report_reads(table, sender):
    job = big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVT9", 1000)
    call = f"{CALL_A}.40"

    with table_requests() as seen:
        send_job(sender, job, bulk_id, call)

    on_mappings = [(op, keys) for op, keys in seen if any(k["pk"].startswith("PMSG#") for k in keys)]
    assert [op for op, _ in on_mappings] == ["UpdateItem"] * 40  # one per block, no read at all
    assert sorted(keys[0]["sk"] for _, keys in on_mappings) == sorted(f"MAP#{b}" for b in range(40))
    store = DynamoReportStore()
    ref = ReportRef.parse(call)
    for i in (1, 25, 26, 999, 1000):
        assert store.mapping(bulk_id(i), report_ref=ref) == MessageRef("acme", job.request_id, i)
    assert store.mapping(bulk_id(1001), report_ref=ref) is None
    assert {i["pk"] for i in pmsg_items(table)} == {f"PMSG#sayasms#{CALL_A}"}  # no MAP item per message


def test_a_full_block_is_one_write_unit(table, sender):
    """25 ids of 30 characters (SayaSMS's msg_<ULID>), indices up to 1,000, a few parked marks."""
    job = big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVT9", 1000)
    ref = ReportRef(CALL_A, 1)
    for i in (1, 2, 3):
        early = report("message.delivered", pid=bulk_id(976 + i), report_ref=str(ref))
        assert reports.receive(early, DynamoReportStore(), NOW) == "parked"

    claim = sender.claim(job, NOW, GRACE)  # its first 975 messages went to 254sms: no links
    sender.record(job, claim, [(r, sent(bulk_id(r.index), str(ref)) if r.index > 975 else Outcome("sent", "254sms"))
                               for r in claim.to_send], NOW)

    (block,) = [i for i in pmsg_items(table) if i["sk"] == "MAP#0"]
    assert len([name for name in block if name.startswith("msg_")]) == 25 and len(block["parked"]) == 3
    assert item_bytes(block) < 1024
    assert all(recipient_status(job, 976 + i) == "delivered" for i in (1, 2, 3))


def recipient_status(job: SendJob, index: int) -> str:
    return get_message(job.tenant_id, job.request_id, index)[2]["status"]


def webhook_interleaved_with_sender(pid: str, report_ref: str | None, after: int, sender_runs) -> str:
    """receive() one early `delivered` report, with the sender's whole record run right after the
    webhook's `after`-th DynamoDB request (0: before the first; past its last: after receive)."""
    real = table_module.table()
    made = {"requests": 0, "sender_ran": False}

    class Interleaving:
        def __getattr__(self, name):
            method = getattr(real, name)
            if made["sender_ran"] or not callable(method):
                return method

            def then_maybe_the_sender(*args, **kwargs):
                answer = method(*args, **kwargs)
                made["requests"] += 1
                if made["requests"] == after:
                    made["sender_ran"] = True
                    sender_runs()
                return answer
            return then_maybe_the_sender

    if after == 0:
        made["sender_ran"] = True
        sender_runs()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_reports, "table", lambda: Interleaving())
        outcome = reports.receive(report("message.delivered", pid=pid, report_ref=report_ref), DynamoReportStore(), NOW)
    if not made["sender_ran"]:
        sender_runs()
    return outcome


# (SayaSMS's id, the ref the sender linked it with, the ref the report came with)
LINK_SHAPES = {
    "call block": (bulk_id(1), f"{CALL_A}.1", f"{CALL_A}.1"),
    "one of many call blocks": (bulk_id(7), f"{CALL_A}.40", f"{CALL_A}.40"),
    "no ref either side": ("SAYA-1", None, None),
    "linked without ref, report with one": (bulk_id(1), None, f"{CALL_A}.1"),
    "linked with ref, report with a malformed one": ("msg_SAYA_1", None, "not-a-ref"),
}


@pytest.mark.parametrize("pid, linked_with, reported_with", LINK_SHAPES.values(), ids=LINK_SHAPES.keys())
@pytest.mark.parametrize("after", range(10))  # the early path makes at most 8 requests: 9 is after receive
def test_an_early_report_is_applied_once_whatever_the_sender_does_between_the_webhooks_requests(
        table, sender, pid, linked_with, reported_with, after):
    """Look (block, MAP), park, mark, look again (block, MAP): the sender's link may land between
    any two of them."""
    outcome = webhook_interleaved_with_sender(
        pid, reported_with, after, lambda: send(sender, {1: sent(pid, linked_with), 2: sent(pid + "x", linked_with)}))

    assert outcome in ("applied", "duplicate", "parked")
    item = recipient()
    assert item["status"] == "delivered"
    assert events(item) == ["message.delivered"]
    assert DynamoReportStore().parked(pid) == []
    assert recipient(2)["status"] == "sent"


def test_a_retried_report_marks_its_block_though_its_first_webhook_died_after_parking(table, sender):
    store = DynamoReportStore()
    real = table_module.table()
    call = f"{CALL_A}.1"

    class DiesBeforeMarking:
        def __getattr__(self, name):
            if name == "update_item":
                raise TimeoutError("the webhook's time ran out")
            return getattr(real, name)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(TimeoutError):
        patch.setattr(store_reports, "table", lambda: DiesBeforeMarking())
        reports.receive(report("message.delivered", report_ref=call), store, NOW)
    assert reports.receive(report("message.delivered", report_ref=call), store, NOW) == "parked"  # SayaSMS's retry

    send(sender, {1: sent(PID, call), 2: sent("msg_SAYA_2", call)})

    assert recipient()["status"] == "delivered"
    assert store.parked(PID) == []


def test_two_calls_refs_do_not_mix_even_when_their_ids_are_the_same(table, sender):
    first, second = big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVTA", 30), big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVTB", 30)
    send_job(sender, first, bulk_id, f"{CALL_A}.2")
    send_job(sender, second, lambda i: bulk_id(31 - i), f"{CALL_B}.2")  # the same ids, numbered the other way
    store = DynamoReportStore()

    a, b = ReportRef.parse(f"{CALL_A}.2"), ReportRef.parse(f"{CALL_B}.2")
    assert [store.mapping(bulk_id(i), report_ref=a) for i in (1, 2, 30)] == [
        MessageRef("acme", first.request_id, i) for i in (1, 2, 30)]
    assert [store.mapping(bulk_id(i), report_ref=b) for i in (1, 2, 30)] == [
        MessageRef("acme", second.request_id, i) for i in (30, 29, 1)]
    assert store.mapping(bulk_id(1), report_ref=ReportRef("01HX4ZQ9GKD2VP7C9XR3MNBVC0", 2)) is None  # no such call


def test_a_block_held_by_another_request_falls_back_to_one_map_item_per_id(table, sender):
    """A reference is a new ULID per call; should two requests ever hold the same one, the second
    must not take over the first's attributes."""
    call = f"{CALL_A}.1"
    first, second = big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVTA", 3), big_job("msg_01HX4ZQ9GKD2VP7C9XR3MNBVTB", 3)
    send_job(sender, first, lambda i: f"msg_A_{i}", call)
    early = report("message.delivered", pid="msg_B_2", report_ref=call)
    assert reports.receive(early, DynamoReportStore(), NOW) == "parked"
    send_job(sender, second, lambda i: f"msg_B_{i}", call)

    store, ref = DynamoReportStore(), ReportRef.parse(call)
    assert [store.mapping(f"msg_A_{i}", report_ref=ref) for i in (1, 2, 3)] == [
        MessageRef("acme", first.request_id, i) for i in (1, 2, 3)]
    assert [store.mapping(f"msg_B_{i}", report_ref=ref) for i in (1, 2, 3)] == [
        MessageRef("acme", second.request_id, i) for i in (1, 2, 3)]
    assert table.get_item(Key={"pk": "PMSG#sayasms#msg_B_1", "sk": "MAP"}).get("Item")
    assert get_message("acme", second.request_id, 2)[2]["status"] == "delivered"  # parked, found by its id


@pytest.mark.parametrize("reported_with", [None, "", "not-a-ref", f"{CALL_A}.0", f"{CALL_A.lower()}.1",
                                           f"{CALL_B}.1", f"{CALL_A}.1 ", f"{CALL_A}.99999"])
def test_a_report_with_a_missing_malformed_or_unknown_ref_finds_a_message_linked_by_its_id(
        table, sender, reported_with):
    send(sender, {1: sent(PID), 2: sent("msg_SAYA_2")})  # linked without a ref: a takeover's relink

    assert reports.receive(report("message.delivered", report_ref=reported_with), DynamoReportStore(), NOW) == "applied"
    assert recipient()["status"] == "delivered"


@pytest.mark.parametrize("reported_with", [None, "not-a-ref", f"{CALL_B}.1"])
def test_a_report_without_its_calls_ref_cannot_find_a_block_linked_message_and_is_parked(
        table, sender, reported_with):
    """The block is found only through the call's reference: such a report waits (and expires),
    it is never applied to another message."""
    send(sender, {1: sent(PID, f"{CALL_A}.1"), 2: sent("msg_SAYA_2", f"{CALL_A}.1")})

    assert reports.receive(report("message.delivered", report_ref=reported_with), DynamoReportStore(), NOW) == "parked"
    assert recipient()["status"] == "sent" and recipient(2)["status"] == "sent"


@pytest.mark.parametrize("pid", ["tenant_id", "request_id", "kind", "parked", "pk", "expires_at"])
def test_an_id_spelled_like_a_block_attribute_has_its_own_map_item(table, sender, pid):
    call = f"{CALL_A}.1"
    send(sender, {1: sent(pid, call), 2: sent("msg_SAYA_2", call)})

    assert table.get_item(Key={"pk": f"PMSG#sayasms#{pid}", "sk": "MAP"}).get("Item")
    assert reports.receive(report("message.delivered", pid=pid, report_ref=call), DynamoReportStore(), NOW) == "applied"
    assert recipient()["status"] == "delivered"
    assert DynamoReportStore().mapping("msg_SAYA_2", report_ref=ReportRef.parse(call)) == MessageRef("acme", REQUEST, 2)


def test_a_relink_by_a_takeover_maps_by_id_and_the_block_still_answers(table, sender):
    call = f"{CALL_A}.1"
    dead = sender.claim(JOB, NOW, GRACE)
    assert sender.mark_calling(JOB, dead, JOB.recipients)
    sender.record(JOB, dead, [(JOB.recipients[0], sent(PID, call)), (JOB.recipients[1], sent("msg_SAYA_2", call))], NOW)
    assert [i["sk"] for i in pmsg_items(table)] == ["MAP#0"]  # linked; then it died before closing its claim

    taken_over = sender.claim(JOB, NOW + timedelta(minutes=5), GRACE)
    assert taken_over.orphaned == list(JOB.recipients)
    unknown = Outcome("unknown", "sayasms", reason="died")
    sender.record(JOB, taken_over, [(r, unknown) for r in taken_over.orphaned], NOW)

    # The stored items keep no reference: the relink maps each id, and both ways find it.
    assert sorted(i["sk"] for i in pmsg_items(table)) == ["MAP", "MAP", "MAP#0"]
    assert DynamoReportStore().mapping(PID, report_ref=ReportRef.parse(call)) == REF
    assert DynamoReportStore().mapping(PID) == REF
