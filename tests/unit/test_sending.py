"""The sender's rule for one job (tuma.domain.sending.send_job) with the DynamoDB store
(tuma.store.messages.MessageStore, on moto) and the real provider simulators.

What must hold: an outage leaves the job to SQS's retry and a redelivery sends exactly once; a
rejection is final (`failed`, with the provider's code); a hang is `unknown` and never resent; a
message already sent is never sent again; a job left in flight by a dead invocation has its
messages `unknown` after the grace period, without a provider call; status only moves forward."""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest

from conftest import Clock, SAYASMS_API_KEY, SMS254_API_KEY, SMS254_USERNAME, ULID, table_hook, utc
from test_batch_progress import bulk
from test_costs_and_estimates import get, post, run_sender  # noqa: F401 (fixtures)
from tuma.domain.circuit import NoBreaker
from tuma.domain.failover import Dispatcher
from tuma.domain.jobs import JobConflict, SendJob, parse_job
from tuma.domain.routing import policy_from
from tuma.domain.messages import accept_send
from tuma.domain.providers import ProviderUnavailable
from tuma.domain.sending import DIED_MID_CALL, JobBusy, Outcome, send_job
from tuma.domain.status import DELIVERED, FAILED, REJECTED, SENT, UNKNOWN
from tuma.providers.sayasms import SayaSms
from tuma.providers.sms254 import Sms254
from tuma.store import messages as message_store
from tuma.store import table as table_module
from tuma.store.history import shown
from tuma.store.sending import MessageStore
from tuma.store.table import message_pk, recipient_pk, recipient_sk

GRACE = timedelta(seconds=30)
T0 = utc(2026, 3, 13, 14, 30, 0)
NUMBERS = ["+254712345678", "+254722111222"]




@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(aws) -> MessageStore:
    return MessageStore()


def make_job(provider: str, numbers=NUMBERS, tenant="tenant-a") -> SendJob:
    """A job as the API makes it: accepted, its request stored, its job JSON parsed back."""
    accepted = accept_send({"to": numbers, "from": "TUMA", "body": "Hello from Tuma", "provider": provider},
                           tenant, T0)
    message_store.put_request(accepted, "send", T0)
    (job,) = accepted.jobs()
    return parse_job(json.dumps(job), "sqs-message-1")


def producer_job(provider: str, recipients: list[dict], queue_message_id: str = "sqs-producer-1", **fields) -> SendJob:
    """A job another service put on the queue: no ids, numbers as its users wrote them."""
    document = {"version": 1, "tenant_id": "tenant-a", "provider": provider, "from": "SHOP",
                "recipients": recipients, **fields}
    return parse_job(json.dumps(document), queue_message_id)


def via(provider_adapter, clock) -> Dispatcher:
    """One provider, no breaker and no immediate retries: these tests are about the job's rules
    (failover and retries are in test_failover.py)."""
    return Dispatcher({provider_adapter.name: provider_adapter}, policy_from(provider_adapter.name, ""),
                      NoBreaker(), clock, retry_pauses=())


def adapter(provider: str, url: str, **kwargs):
    if provider == "sayasms":
        return SayaSms(url, kwargs.get("api_key", SAYASMS_API_KEY))
    return Sms254(url, SMS254_USERNAME, kwargs.get("api_key", SMS254_API_KEY))


@pytest.fixture(params=["sayasms", "254sms"])
def setup(request, aws, simsaya, sim254):
    """(provider name, its simulator, its adapter) for each provider."""
    sim = simsaya if request.param == "sayasms" else sim254
    return request.param, sim, adapter(request.param, sim.url)


def sent_numbers(provider: str, call: dict) -> list[str]:
    """The numbers of one recorded provider call, as E.164."""
    if provider == "sayasms":
        body = call["body"]
        return body["to"] if "to" in body else [m["to"] for m in body["messages"]]
    return ["+" + n for n in call["body"]["phone"].split(",")]


def item(aws, job: SendJob, n: int) -> dict | None:
    return aws.item(recipient_pk(job.tenant_id, job.request_id, n), recipient_sk(n))


def job_item(aws, job: SendJob) -> dict | None:
    return aws.item(message_pk(job.tenant_id, job.request_id), f"J#{job.identity}")


def statuses(aws, job: SendJob) -> list[str | None]:
    return [(item(aws, job, r.index) or {}).get("status") for r in job.recipients]


def history(aws, job: SendJob, n: int) -> list[str]:
    return [entry["status"] for entry in item(aws, job, n)["history"]]


# --- sent ------------------------------------------------------------------------------------


def test_sayasms_job_is_sent_and_recorded_with_sayasms_ids_and_cost(aws, store, simsaya, clock):
    job = make_job("sayasms")
    report = send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert report.by_status == {"sent": 2}
    taken = {m["to"]: m["message_id"] for m in simsaya.messages()}
    for n, number in enumerate(NUMBERS, start=1):
        stored = item(aws, job, n)
        assert stored["status"] == "sent"
        assert stored["provider"] == "sayasms"
        assert stored["provider_message_id"] == taken[number]
        assert stored["cost"] == "KES 0.90"
        assert stored["updated_at"] == "2026-03-13T14:30:00.000Z"
        assert stored["expires_at"] == int((T0 + timedelta(days=90)).timestamp())
        assert [e["status"] for e in stored["history"]] == ["sending", "sent"]
        assert "error_code" not in stored
        # Kept once (tuma.store.history): the key says the message id, the chunk the number, the
        # history when it began; the `sent` entry shares the item's provider id and cost, which the
        # reader puts back.
        assert not {"message_id", "number", "created_at"} & set(stored)
        assert not {"provider_message_id", "cost"} & set(stored["history"][-1])
        assert shown(stored)["history"][-1] == {"status": "sent", "at": "2026-03-13T14:30:00.000Z",
                                                "provider": "sayasms", "provider_message_id": taken[number],
                                                "cost": "KES 0.90"}
    claim = job_item(aws, job)
    assert (claim["state"], claim["attempts"], claim["pending"]) == ("done", 1, [])


def test_254sms_job_is_sent_in_one_call_of_digits(aws, store, sim254, clock):
    job = make_job("254sms")
    assert send_job(job, store, via(adapter("254sms", sim254.url), clock), clock, GRACE).by_status == {"sent": 2}
    assert statuses(aws, job) == [SENT, SENT]
    (call,) = sim254.requests()
    assert call["body"]["phone"] == "254712345678,254722111222"
    assert "provider_message_id" not in item(aws, job, 1)  # 254sms has no message ids


def test_a_producer_job_is_registered_its_bad_numbers_rejected_and_the_rest_sent(aws, setup, store, clock):
    provider, sim, provider_adapter = setup
    recipients = [{"number": "0712345678", "body": "Hi Grace"}, {"number": "+254202222222", "body": "Hi landline"},
                  {"number": "722111222", "body": "Hi Peter"}]
    job = producer_job(provider, recipients, callback_url="https://shop.example/sms")

    report = send_job(job, store, via(provider_adapter, clock), clock, GRACE)

    assert report.by_status == {"sent": 2, "rejected": 1}
    assert statuses(aws, job) == [SENT, REJECTED, SENT]
    assert item(aws, job, 2)["reason"] == "number is not a mobile number"
    assert history(aws, job, 2) == ["rejected"]  # never tried
    assert item(aws, job, 1)["callback_url"] == "https://shop.example/sms"
    calls = sim.requests()  # SayaSMS: one bulk call; 254sms: one call per body
    assert len(calls) == (1 if provider == "sayasms" else 2)
    assert sorted(n for c in calls for n in sent_numbers(provider, c)) == ["+254712345678", "+254722111222"]
    request = aws.item(message_pk("tenant-a", job.request_id), "REQ")
    assert (request["kind"], request["total"], request["from"]) == ("producer", 3, "SHOP")
    chunk = aws.item(message_pk("tenant-a", job.request_id), "C#000001")
    assert chunk["numbers"] == ["+254712345678", "+254202222222", "+254722111222"]

    # The same queue message again: the same ids, nothing sent or registered twice.
    again = producer_job(provider, recipients, callback_url="https://shop.example/sms")
    assert again.request_id == job.request_id
    clock.advance(minutes=3)
    assert send_job(again, store, via(provider_adapter, clock), clock, GRACE).by_status == {}
    assert len(sim.requests()) == len(calls)
    assert aws.item(message_pk("tenant-a", job.request_id), "REQ")["created_at"] == request["created_at"]


# --- rejected: final -------------------------------------------------------------------------


@pytest.mark.parametrize("provider, fault, code", [
    ("sayasms", {"error": "invalid_request"}, "invalid_request"),
    ("sayasms", {"error": "unauthorized"}, "unauthorized"),
    ("sayasms", {"error": "insufficient_balance"}, "insufficient_balance"),
    ("254sms", {"error": "X000"}, "X000"),
    ("254sms", {"error": "X001"}, "X001"),
    ("254sms", {"error": "X002"}, "X002"),
    ("254sms", {"error": "X003"}, "X003"),
])
def test_a_rejection_is_recorded_failed_with_the_providers_code_and_never_retried(
        aws, store, simsaya, sim254, clock, provider, fault, code):
    sim = simsaya if provider == "sayasms" else sim254
    sim.faults(fault)  # every call refused
    job = make_job(provider)

    report = send_job(job, store, via(adapter(provider, sim.url), clock), clock, GRACE)

    assert report.by_status == {"failed": 2}
    for n in (1, 2):
        stored = item(aws, job, n)
        assert stored["status"] == FAILED
        assert stored["error_code"] == code
        assert stored["reason"]
        assert stored["history"][-1] | {"at": None} == {
            "status": "failed", "at": None, "provider": provider, "error_code": code, "reason": stored["reason"]}
    assert job_item(aws, job)["state"] == "done"
    # A redelivery of the same job calls nobody.
    clock.advance(minutes=5)
    assert send_job(job, store, via(adapter(provider, sim.url), clock), clock, GRACE).by_status == {}
    assert len(sim.requests()) == 1
    assert statuses(aws, job) == [FAILED, FAILED]


def test_a_wrong_sayasms_key_fails_the_recipients_with_401(aws, store, simsaya, clock):
    job = make_job("sayasms")
    send_job(job, store, via(adapter("sayasms", simsaya.url, api_key="sk_test_wrong"), clock), clock, GRACE)
    stored = item(aws, job, 1)
    assert (stored["status"], stored["error_code"]) == ("failed", "unauthorized")
    assert stored["reason"].startswith("HTTP 401")


# --- outage: retried, then sent exactly once -------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_an_outage_leaves_the_job_to_sqs_and_a_redelivery_sends_exactly_once(aws, store, setup, clock, status):
    provider, sim, provider_adapter = setup
    sim.faults({"status": status, "count": 1})
    job = make_job(provider)

    with pytest.raises(ProviderUnavailable) as raised:
        send_job(job, store, via(provider_adapter, clock), clock, GRACE)
    assert raised.value.reason == f"2 message(s) not taken: HTTP {status}"
    # Nothing recorded for the messages; the job waits for its retry with both of them pending.
    assert statuses(aws, job) == [None, None]
    claim = job_item(aws, job)
    assert (claim["state"], claim["pending"], claim["last_reason"]) == ("retry", [1, 2], f"HTTP {status}")
    assert sim.answered() == []

    clock.advance(seconds=30)  # SQS's visibility timeout later
    report = send_job(job, store, via(provider_adapter, clock), clock, GRACE)

    assert report.by_status == {"sent": 2}
    assert statuses(aws, job) == [SENT, SENT]
    assert (job_item(aws, job)["state"], job_item(aws, job)["attempts"]) == ("done", 2)
    assert len(sim.requests()) == 2
    assert len(sim.answered()) == 1  # the one call the provider really handled
    if provider == "sayasms":
        assert sorted(m["to"] for m in sim.messages()) == sorted(NUMBERS)


def test_a_partial_outage_records_what_went_and_the_retry_sends_only_the_rest(aws, store, sim254, clock):
    # Two bodies make two 254sms calls; the first to arrive gets a 503.
    sim254.faults({"status": 503, "count": 1})
    job = producer_job("254sms", [{"number": "0712345678", "body": "A"}, {"number": "0722111222", "body": "B"},
                                  {"number": "0733123456", "body": "A"}])
    provider_adapter = adapter("254sms", sim254.url)

    with pytest.raises(ProviderUnavailable, match="not taken: HTTP 503"):
        send_job(job, store, via(provider_adapter, clock), clock, GRACE)
    (refused,) = [r for r in sim254.requests() if r.get("fault")]
    refused_numbers = set(sent_numbers("254sms", refused))
    first = {r.number: (item(aws, job, r.index) or {}).get("status") for r in job.recipients}
    assert {n for n, s in first.items() if s == SENT} == {r.number for r in job.recipients} - refused_numbers
    assert {n for n, s in first.items() if s is None} == refused_numbers
    assert sorted(job_item(aws, job)["pending"]) == sorted(r.index for r in job.recipients
                                                           if r.number in refused_numbers)

    clock.advance(seconds=30)
    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {"sent": len(refused_numbers)}

    assert statuses(aws, job) == [SENT, SENT, SENT]
    answered = [n for r in sim254.answered() for n in sent_numbers("254sms", r)]
    assert sorted(answered) == sorted(r.number for r in job.recipients)  # each number exactly once


def test_connection_refused_is_an_outage_and_the_next_delivery_sends(aws, store, setup, clock, closed_url):
    provider, sim, provider_adapter = setup
    job = make_job(provider)

    with pytest.raises(ProviderUnavailable, match="connection failed"):
        send_job(job, store, via(adapter(provider, closed_url), clock), clock, GRACE)
    assert job_item(aws, job)["state"] == "retry"

    clock.advance(seconds=30)
    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {"sent": 2}
    assert len(sim.requests()) == 1


# --- redelivery after success ----------------------------------------------------------------


def test_a_redelivered_job_sends_nothing_more(aws, store, setup, clock):
    provider, sim, provider_adapter = setup
    job = make_job(provider)
    send_job(job, store, via(provider_adapter, clock), clock, GRACE)
    clock.advance(minutes=3)

    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {}
    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {}

    assert len(sim.requests()) == 1
    assert statuses(aws, job) == [SENT, SENT]
    assert history(aws, job, 1) == ["sending", "sent"]
    assert job_item(aws, job)["attempts"] == 1


def test_a_different_job_sharing_the_first_message_id_is_not_silently_dropped(aws, store, setup, clock):
    """The claim is keyed on the job's identity, and a producer job whose request id names
    another job is refused whole (to the DLQ, with its reason): neither sent twice nor dropped."""
    provider, sim, provider_adapter = setup
    request_id = "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4"
    first = producer_job(provider, [{"number": "0712345678", "body": "Hi", "message_id": f"{request_id}_1"}],
                         request_id=request_id)
    second = producer_job(provider, [{"number": "0712345678", "body": "Hi", "message_id": f"{request_id}_1"},
                                     {"number": "0722111222", "body": "Hi", "message_id": f"{request_id}_2"}],
                          queue_message_id="sqs-producer-2", request_id=request_id)
    assert first.identity != second.identity
    send_job(first, store, via(provider_adapter, clock), clock, GRACE)
    with pytest.raises(JobConflict, match=f"request_id {request_id} already names another job"):
        send_job(second, store, via(provider_adapter, clock), clock, GRACE)
    assert [n for call in sim.answered() for n in sent_numbers(provider, call)] == ["+254712345678"]
    assert statuses(aws, second) == [SENT, None]


# --- hang: unknown, never resent -------------------------------------------------------------


def test_a_hang_makes_the_recipients_unknown_and_they_are_never_resent(aws, store, setup, clock, short_read_timeout):
    provider, sim, provider_adapter = setup
    sim.faults({"hang": True, "count": 1})
    job = make_job(provider)

    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {"unknown": 2}
    for n in (1, 2):
        stored = item(aws, job, n)
        assert (stored["status"], stored["error_code"]) == (UNKNOWN, "read_timeout")
    assert job_item(aws, job)["state"] == "done"

    clock.advance(minutes=3)
    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {}
    assert len(sim.requests()) == 1
    assert statuses(aws, job) == [UNKNOWN, UNKNOWN]


# --- in flight: a dead invocation, or a live one ---------------------------------------------


def test_a_stale_in_flight_job_makes_its_messages_unknown_without_a_provider_call(aws, store, setup, clock):
    provider, sim, provider_adapter = setup
    job = make_job(provider)
    # An invocation claimed the job, named its messages in a provider call (so maybe sent them),
    # then died before recording anything.
    dead = store.claim(job, clock(), GRACE)
    assert dead.state == "claimed" and dead.to_send == list(job.recipients)
    assert store.mark_calling(job, dead, dead.to_send)

    clock.advance(seconds=GRACE.total_seconds() + 1)
    report = send_job(job, store, via(provider_adapter, clock), clock, GRACE)

    assert report.by_status == {"unknown": 2}
    assert sim.requests() == []
    for n in (1, 2):
        stored = item(aws, job, n)
        assert (stored["status"], stored["reason"]) == (UNKNOWN, DIED_MID_CALL)
        assert [e["status"] for e in stored["history"]] == ["unknown"]
    assert (job_item(aws, job)["state"], job_item(aws, job)["attempts"]) == ("done", 2)
    # And it stays that way; the dead invocation's claim can no longer close the job.
    store.finish(job, dead, list(job.recipients), "HTTP 503", clock())
    assert job_item(aws, job)["state"] == "done"
    clock.advance(minutes=5)
    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {}
    assert sim.requests() == []


def test_what_a_dead_invocation_recorded_is_kept_the_rest_is_unknown(aws, store, setup, clock):
    provider, sim, provider_adapter = setup
    job = make_job(provider)
    dead = store.claim(job, clock(), GRACE)
    assert store.mark_calling(job, dead, dead.to_send)
    store.record(job, dead, [(job.recipients[0], Outcome(SENT, provider, provider_message_id="p-1"))], clock())

    clock.advance(seconds=GRACE.total_seconds() + 1)
    send_job(job, store, via(provider_adapter, clock), clock, GRACE)

    assert statuses(aws, job) == [SENT, UNKNOWN]
    assert item(aws, job, 1)["provider_message_id"] == "p-1"
    assert sim.requests() == []


@pytest.mark.parametrize("age", [timedelta(seconds=1), GRACE])
def test_a_fresh_in_flight_job_is_busy(aws, store, setup, clock, age):
    provider, sim, provider_adapter = setup
    job = make_job(provider)
    store.claim(job, clock(), GRACE)
    clock.now += age

    with pytest.raises(JobBusy):
        send_job(job, store, via(provider_adapter, clock), clock, GRACE)

    assert sim.requests() == []
    assert statuses(aws, job) == [None, None]
    assert job_item(aws, job)["state"] == "in_flight"


def test_a_stale_retry_attempt_makes_only_its_pending_messages_unknown(aws, store, sim254, clock):
    sim254.faults({"status": 503, "count": 1})
    job = producer_job("254sms", [{"number": "0712345678", "body": "A"}, {"number": "0722111222", "body": "B"}])
    provider_adapter = adapter("254sms", sim254.url)
    with pytest.raises(ProviderUnavailable):
        send_job(job, store, via(provider_adapter, clock), clock, GRACE)
    pending = [int(i) for i in job_item(aws, job)["pending"]]
    assert len(pending) == 1
    # The retry's invocation claims the job, calls the provider and dies.
    clock.advance(seconds=60)
    retry = store.claim(job, clock(), GRACE)
    assert store.mark_calling(job, retry, retry.to_send)
    clock.advance(seconds=GRACE.total_seconds() + 1)

    assert send_job(job, store, via(provider_adapter, clock), clock, GRACE).by_status == {"unknown": 1}
    assert [s for s in statuses(aws, job)] == [UNKNOWN if r.index in pending else SENT for r in job.recipients]
    assert len(sim254.answered()) == 1


# --- forward only ----------------------------------------------------------------------------


def set_status(aws, job: SendJob, n: int, status: str) -> None:
    aws.table.update_item(Key={"pk": recipient_pk(job.tenant_id, job.request_id, n), "sk": recipient_sk(n)},
                          UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": status})


def test_a_late_sent_after_delivered_keeps_delivered_and_appends_history(aws, store, simsaya, clock):
    job = make_job("sayasms")
    claim = store.claim(job, clock(), GRACE)
    recipient = job.recipients[0]
    store.record(job, claim, [(recipient, Outcome(SENT, "sayasms", provider_message_id="msg_p_1"))], clock())
    set_status(aws, job, 1, DELIVERED)  # a delivery report got there first

    clock.advance(seconds=1)
    store.record(job, claim, [(recipient, Outcome(SENT, "sayasms", provider_message_id="msg_p_1"))], clock())

    stored = item(aws, job, 1)
    assert stored["status"] == DELIVERED
    assert [e["status"] for e in stored["history"]][-1] == "sent"


def test_a_late_outcome_whose_write_lost_its_answer_is_noted_once(aws, store, simsaya, clock, monkeypatch):
    """botocore sends a write again when its answer is lost; a late note changes no status, so only
    the history's length tells the retry that it is done."""
    from test_batch_progress import moto_faults

    job = make_job("sayasms")
    claim = store.claim(job, clock(), GRACE)
    recipient = job.recipients[0]
    store.record(job, claim, [(recipient, Outcome(SENT, "sayasms", provider_message_id="msg_p_1"))], clock())
    set_status(aws, job, 1, DELIVERED)
    lost = moto_faults(monkeypatch, "update_item", lambda args, kwargs: "list_append(if_not_exists(history" in str(
        args + tuple(kwargs.values())), "lost")

    clock.advance(seconds=1)
    store.record(job, claim, [(recipient, Outcome(SENT, "sayasms", provider_message_id="msg_p_1"))], clock())

    assert lost  # the note's write was applied and its answer lost
    notes = [e for e in item(aws, job, 1)["history"] if "note" in e]
    assert [n["note"] for n in notes] == ["late: the message is already delivered; status unchanged"]
    assert notes[0]["provider_message_id"] == "msg_p_1"  # a note keeps the outcome whole


def test_scope_of_the_stored_items(aws, store, simsaya, clock):
    first, second = make_job("sayasms", tenant="tenant-a"), make_job("sayasms", tenant="tenant-b")
    send_job(first, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)
    send_job(second, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)
    assert first.request_id != second.request_id
    keys = sorted((i["pk"], i["sk"]) for i in aws.items())
    # A message item's key adds its shard (tuma.store.table.recipient_pk) to its request's.
    assert all(re.fullmatch(rf"T#tenant-[ab]#M#msg_{ULID}" + (r"#\d" if sk.startswith("R#") else ""), pk)
               for pk, sk in keys)
    assert sorted(sk for _, sk in keys) == sorted(["REQ", "C#000001", "J#000001", "R#000001", "R#000002"] * 2)


# --- the write of the outcomes: batched INSERTs, 1 write unit per new message ----------------


@contextmanager
def message_writes():
    """Write units the sender's requests spend on message items (R#...), by operation, as DynamoDB
    bills them for items under 1 KB: a transactional put 2, a PartiQL INSERT or a single write 1."""
    spent = Counter()

    def of_a_message(item: dict) -> bool:
        sk = item["sk"]  # as the caller wrote it, or already serialized (the table's own hook)
        return (sk["S"] if isinstance(sk, dict) else sk).startswith("R#")

    def count(params, model, **_):
        name, units = model.name, 0
        if name == "TransactWriteItems":
            units = 2 * sum(1 for e in params["TransactItems"] if "Put" in e and of_a_message(e["Put"]["Item"]))
        elif name == "BatchExecuteStatement":
            units = sum(1 for s in params["Statements"] if s["Statement"].startswith("INSERT"))
        elif name in ("PutItem", "UpdateItem"):
            units = int(of_a_message(params.get("Key") or params["Item"]))
        if units:
            spent[name] += units

    with table_hook("before-parameter-build.dynamodb", count):
        yield spent


def many(n: int) -> list[str]:
    return [f"+2547{i:08d}" for i in range(n)]


def test_the_outcomes_cost_one_write_unit_per_new_message(aws, store, simsaya, clock):
    """Issue 12: 60 new message items are 60 write units (3 requests of INSERTs), not the 120 of
    conditional puts in a transaction."""
    job = make_job("sayasms", numbers=many(60))
    with message_writes() as spent:
        send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [SENT] * 60
    assert all(history(aws, job, r.index) == ["sending", "sent"] for r in job.recipients)
    assert dict(spent) == {"BatchExecuteStatement": 60}


def test_items_that_exist_already_are_moved_or_kept_and_only_the_new_ones_inserted(aws, store, simsaya, clock):
    """A delivery report got to message 2 first, and message 27 was left `unknown` (forward of
    it is `sent`): the other 28 are inserted in the batches; 2 keeps `delivered` and only gains
    the late `sent` in its history, 27 moves to `sent`, each read and written one by one."""
    job = make_job("sayasms", numbers=many(30))
    for n, status in ((2, DELIVERED), (27, UNKNOWN)):
        aws.table.put_item(Item={"pk": recipient_pk(job.tenant_id, job.request_id, n), "sk": recipient_sk(n),
                                 "status": status, "history": [{"status": status, "at": "2026-03-13T14:29:59.000Z"}]})
    with message_writes() as spent:
        send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [DELIVERED if n == 2 else SENT for n in range(1, 31)]
    assert history(aws, job, 2) == [DELIVERED, SENT]
    assert item(aws, job, 2)["history"][-1]["note"] == "late: the message is already delivered; status unchanged"
    assert "provider_message_id" not in item(aws, job, 2)
    assert history(aws, job, 27) == [UNKNOWN, "sending", SENT]
    taken = {m["to"]: m["message_id"] for m in simsaya.messages()}
    assert item(aws, job, 27)["provider_message_id"] == taken[job.recipients[26].number]
    assert all(history(aws, job, n) == ["sending", "sent"] for n in range(1, 31) if n not in (2, 27))
    # 30 INSERTs (2 refused), then each refused one read and updated (no put tried again).
    assert dict(spent) == {"BatchExecuteStatement": 30, "UpdateItem": 2}


def test_inserts_whose_answer_was_lost_are_neither_written_nor_counted_twice(post, get, run_sender, aws, monkeypatch):
    """botocore sends a BatchExecuteStatement again when its answer is lost (a reset, a 500): the
    INSERTs were applied, so the retry is refused DuplicateItem for each. Those go one by one,
    find their own outcome there, and change nothing: one `sent` each, the batch counted once."""
    client = table_module.table().meta.client
    real, retry_answers = client.batch_execute_statement, []

    def lost_answer(**kwargs):
        if not retry_answers:
            real(**kwargs)  # applied, but the answer never came back: botocore sends it again
            retry_answers.append(real(**kwargs))
            return retry_answers[0]
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_execute_statement", lost_answer)
    batch_id = bulk(post, 30)
    run_sender()

    assert [answer["Error"]["Code"] for answer in retry_answers[0]["Responses"]] == ["DuplicateItem"] * 25
    messages = [i for i in aws.items() if i["sk"].startswith("R#")]
    assert len(messages) == 30
    assert all([e["status"] for e in m["history"]] == ["sending", "sent"] for m in messages)
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 30} and view["total_cost"] == "KES 27.00"


def failing_inserts(client, monkeypatch, code: str, times: int, n: int = 4) -> list[int]:
    """Make DynamoDB answer `code` to the INSERT of message `n` (not applying it), the first
    `times` times; how many statements each request carried."""
    real, sizes, failed = client.batch_execute_statement, [], []

    def answer(Statements, **kwargs):
        sizes.append(len(Statements))
        at = next((i for i, s in enumerate(Statements) if s["Parameters"][1] == recipient_sk(n)), None)
        if at is None or len(failed) >= times:
            return real(Statements=Statements, **kwargs)
        failed.append(at)
        rest = real(Statements=Statements[:at] + Statements[at + 1:], **kwargs)["Responses"] if len(Statements) > 1 \
            else []
        return {"Responses": rest[:at] + [{"Error": {"Code": code, "Message": "x"}}] + rest[at:]}

    monkeypatch.setattr(client, "batch_execute_statement", answer)
    return sizes


def test_a_throttled_insert_is_tried_again_alone(aws, store, simsaya, clock, monkeypatch):
    """A per-statement ThrottlingError: the request succeeded, that one INSERT was not applied."""
    job = make_job("sayasms", numbers=many(30))
    sizes = failing_inserts(table_module.table().meta.client, monkeypatch, "ThrottlingError", times=1)

    send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert sizes == [25, 1, 5]
    assert statuses(aws, job) == [SENT] * 30
    assert all(history(aws, job, r.index) == ["sending", "sent"] for r in job.recipients)


def test_an_insert_that_keeps_failing_fails_the_invocation_and_the_takeover_makes_it_unknown(
        aws, store, simsaya, clock, monkeypatch):
    """Bounded: after INSERT_ATTEMPTS, and after the job's other batches, the invocation fails
    (SQS delivers the job again). The claim still holds the message's provider call, so the
    takeover records only that one `unknown`, calling nobody."""
    from tuma.store.sending import INSERT_ATTEMPTS

    job = make_job("sayasms", numbers=many(30))
    sizes = failing_inserts(table_module.table().meta.client, monkeypatch, "InternalServerError",
                            times=INSERT_ATTEMPTS)
    with pytest.raises(RuntimeError, match="kept failing 1 inserts"):
        send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)
    assert sizes == [25] + [1] * (INSERT_ATTEMPTS - 1) + [5]  # the next batch is written still
    assert job_item(aws, job)["state"] == "in_flight"

    clock.advance(seconds=GRACE.total_seconds() + 1)
    send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [UNKNOWN if n == 4 else SENT for n in range(1, 31)]
    assert len(simsaya.messages()) == 30


def test_an_insert_refused_for_any_other_reason_fails_at_once(aws, store, simsaya, clock, monkeypatch):
    job = make_job("sayasms", numbers=many(5))
    sizes = failing_inserts(table_module.table().meta.client, monkeypatch, "ValidationError", times=99)
    with pytest.raises(RuntimeError, match="refused an insert: ValidationError"):
        send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)
    assert sizes == [5]


def test_a_takeover_counts_each_orphan_once_whether_the_dead_sender_wrote_it_or_not(
        post, get, aws, simsaya, clock):
    """The dead invocation called the provider for all 30 and recorded the first 10 before dying.
    The takeover's first batch of INSERTs meets those 10 (refused) among 15 new ones: the 10
    stand as they are (no more writes) and count as stored (`sent`), the 20 others are inserted
    `unknown` and count so."""
    batch_id = bulk(post, 30)
    (body,) = [m["Body"] for m in aws.receive(aws.queue_url)]
    job = parse_job(body, "sqs-1")
    store = MessageStore()
    dead = store.claim(job, clock(), GRACE)
    assert store.mark_calling(job, dead, dead.to_send)
    store.record(job, dead, [(r, Outcome(SENT, "sayasms", provider_message_id=f"p-{r.index}", cost="KES 0.90"))
                             for r in job.recipients[:10]], clock())

    clock.advance(seconds=GRACE.total_seconds() + 1)
    with message_writes() as spent:
        send_job(job, store, via(adapter("sayasms", simsaya.url), clock), clock, GRACE)

    assert dict(spent) == {"BatchExecuteStatement": 30}
    assert statuses(aws, job) == [SENT] * 10 + [UNKNOWN] * 20
    assert simsaya.messages() == []
    view = get(f"/v1/batches/{batch_id}")
    assert view["counts"] == {"sent": 10, "unknown": 20} and view["total_cost"] == "KES 9.00"
