"""The sender keeps the promise (issue 9): every accepted recipient reaches a provider at most once
and ends in a state the caller can see. One test (or one parametrised family) per broken item,
each written against the interleaving that broke it on 79cde19.

Answers the simulators cannot give (an HTML 200, a 501/52x, a redirect, a broken chunked or gzip
body) come from `RawServer`, a loopback socket server that writes canned HTTP bytes."""

from __future__ import annotations

import errno
import json
import socket
import socketserver
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from conftest import Clock, REPO, SAYASMS_API_KEY, SMS254_API_KEY, SMS254_USERNAME, sqs_event, utc
from tuma.domain.circuit import CircuitSettings, NoBreaker
from tuma.domain.failover import Dispatcher
from tuma.domain.jobs import JobRecipient, SendJob, parse_job
from tuma.domain.providers import (
    NO_TIME, NOT_TAKEN, OutgoingMessage, ProviderAmbiguous, ProviderUnavailable)
from tuma.domain.routing import policy_from
from tuma.domain.sending import CLOCK_MARGIN, DIED_MID_CALL, send_job
from tuma.domain.status import DELIVERED, REJECTED, SENT, UNKNOWN
from tuma.providers.sayasms import SayaSms
from tuma.providers.sms254 import Sms254
from tuma.store import table as table_module
from tuma.store.circuit import DynamoBreaker, read_circuit
from tuma.store.linking import ReportingMessageStore
from tuma.store.sending import MessageStore
from tuma.store.table import message_pk, recipient_pk, recipient_sk

GRACE = timedelta(seconds=30)
T0 = utc(2026, 12, 2, 9, 0, 0)




@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


class RawServer:
    """Answers every request with `answer` (raw HTTP bytes) and counts the requests it read."""

    def __init__(self, answer: bytes):
        self.answer, self.requests = answer, 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += self.request.recv(65536)
                outer.requests += 1
                self.request.sendall(outer.answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw():
    servers = []

    def start(answer: bytes) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def http_answer(status: int, body: bytes = b"{}", content_type: str = "application/json", **headers) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def msgs(numbers, body="Hi") -> list[OutgoingMessage]:
    return [OutgoingMessage(n, body) for n in numbers]


def producer_job(provider: str | None, recipients: list[dict], queue_message_id: str = "sqs-1", **fields) -> SendJob:
    document = {"version": 1, "tenant_id": "tenant-a", "from": "SHOP", "recipients": recipients, **fields}
    if provider:
        document["provider"] = provider
    return parse_job(json.dumps(document), queue_message_id)


def one_provider(adapter, clock, **kwargs) -> Dispatcher:
    return Dispatcher({adapter.name: adapter}, policy_from(adapter.name, ""), NoBreaker(), clock,
                      **{"retry_pauses": (), **kwargs})


def item(aws, job: SendJob, n: int) -> dict | None:
    return aws.item(recipient_pk(job.tenant_id, job.request_id, n), recipient_sk(n))


def statuses(aws, job: SendJob) -> list[str | None]:
    return [(item(aws, job, r.index) or {}).get("status") for r in job.recipients]


def saya(url: str) -> SayaSms:
    return SayaSms(url, SAYASMS_API_KEY)


def sms254(url: str) -> Sms254:
    return Sms254(url, SMS254_USERNAME, SMS254_API_KEY)


# --- 1. a producer job's identity survives a DLQ redrive and a producer's retry ------------------


def test_a_producer_job_redriven_from_the_dlq_sends_nothing_twice(aws, sim254, clock):
    """Bodies A and B through 254sms: one call gets a 503, the other is sent; the job is retried
    until the DLQ, an operator redrives it (a new SQS message id), and only the untaken one goes."""
    recipients = [{"number": "0712345678", "body": "A"}, {"number": "0722111222", "body": "B"}]
    store, adapter = MessageStore(), sms254(sim254.url)
    sim254.faults({"status": 503, "count": 1})
    first = producer_job("254sms", recipients, queue_message_id="sqs-original")
    with pytest.raises(ProviderUnavailable):
        send_job(first, store, one_provider(adapter, clock), clock, GRACE)

    redriven = producer_job("254sms", recipients, queue_message_id="sqs-redriven")
    assert redriven.request_id == first.request_id
    send_job(redriven, store, one_provider(adapter, clock), clock, GRACE)

    answered = sorted(call["body"]["message"] for call in sim254.answered())
    assert answered == ["A", "B"]  # each body reached 254sms once
    assert statuses(aws, redriven) == [SENT, SENT]


def test_a_producers_idempotency_key_names_the_job_across_retries(aws, simsaya, clock):
    recipients = [{"number": "0712345678"}]
    job = producer_job("sayasms", recipients, body="Your code is 1234", idempotency_key="otp-7781")
    again = producer_job("sayasms", recipients, body="Your code is 1234", idempotency_key="otp-7781",
                         queue_message_id="sqs-retried-send")
    other = producer_job("sayasms", recipients, body="Your code is 1234", idempotency_key="otp-7782")
    for each in (job, again, other):
        send_job(each, MessageStore(), one_provider(saya(simsaya.url), clock), clock, GRACE)
    assert job.request_id == again.request_id != other.request_id
    assert len(simsaya.messages()) == 2  # the same text twice on purpose: two keys, two sends


# --- 2. every answer classified by what it proves; every failure feeds the breaker -------------


@pytest.mark.parametrize("status, kind", [
    (501, ProviderUnavailable), (505, ProviderUnavailable), (521, ProviderUnavailable),
    (522, ProviderUnavailable), (523, ProviderUnavailable),
    (500, ProviderAmbiguous), (507, ProviderAmbiguous), (520, ProviderAmbiguous), (524, ProviderAmbiguous),
])
def test_every_http_answer_is_classified_by_what_it_proves(raw, status, kind):
    server = raw(http_answer(status))
    with pytest.raises(kind) as raised:
        saya(server.url).send("TUMA", msgs(["+254712345678"]))
    assert raised.value.code == str(status)
    outcomes = sms254(server.url).send("TUMA", msgs(["+254712345678"]))
    assert [o.status for o in outcomes] == [NOT_TAKEN if kind is ProviderUnavailable else UNKNOWN]
    assert outcomes[0].provider_failed


def test_an_unreadable_2xx_is_ambiguous_and_opens_the_circuit_so_the_other_provider_takes_over(
        aws, raw, sim254, clock):
    maintenance = raw(http_answer(200, b"<html><body>Down for maintenance</body></html>", "text/html"))
    breaker = DynamoBreaker(CircuitSettings(threshold=2, cooloff=timedelta(seconds=60)))
    dispatcher = Dispatcher({"sayasms": saya(maintenance.url), "254sms": sms254(sim254.url)},
                            policy_from("sayasms", ""), breaker, clock, retry_pauses=())

    def send(n: int):
        (attempt,) = dispatcher.send("TUMA", [JobRecipient(f"msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_{n}", "+254712345678",
                                                           f"Hi {n}")], None)
        return attempt

    first, second = send(1), send(2)
    assert [(a.provider, a.answer.status, a.answer.error_code) for a in (first, second)] == [
        ("sayasms", UNKNOWN, "unreadable_answer")] * 2  # ambiguous: never resent elsewhere
    assert read_circuit("sayasms")["state"] == "open"
    third = send(3)
    assert (third.provider, third.answer.status, third.failover_reason) == ("254sms", SENT, "sayasms: circuit open")
    assert maintenance.requests == 2


# --- 3. 254sms fan-out checks the time before each call ---------------------------------------


def test_254sms_fan_out_checks_the_time_before_each_call_and_leaves_the_rest_for_the_retry(
        aws, sim254, clock, monkeypatch):
    from tuma.providers import sms254 as sms254_module

    monkeypatch.setattr(sms254_module, "POOL_SIZE", 2)  # rounds of 2 calls, as 1,000 bodies in rounds of 32
    bodies = [f"Hi customer {i}, your order is ready" for i in range(12)]
    job = producer_job("254sms", [{"number": f"+2547120000{i:02d}", "body": b} for i, b in enumerate(bodies)])
    store, adapter = MessageStore(), sms254(sim254.url)
    finished, left_at_start = [0], []
    real_post = Sms254._post

    def post(self, path, fields):  # one provider call takes 5 s of the invocation
        left_at_start.append(100 - 5 * finished[0])
        try:
            return real_post(self, path, fields)
        finally:
            finished[0] += 1

    monkeypatch.setattr(Sms254, "_post", post)
    budget = 80  # what one call may take, and recording its answer
    tight = one_provider(adapter, clock, time_left=lambda: 100 - 5 * finished[0], call_budget_s=budget)
    with pytest.raises(ProviderUnavailable, match="no time left"):
        send_job(job, store, tight, clock, GRACE)
    assert left_at_start and min(left_at_start) >= budget  # no call started without the time to finish it
    first_round = len(left_at_start)
    assert 0 < first_round < len(bodies)
    assert UNKNOWN not in statuses(aws, job)
    assert statuses(aws, job).count(SENT) == first_round

    send_job(job, store, one_provider(adapter, clock), clock, GRACE)  # the job's next delivery
    assert sorted(call["body"]["message"] for call in sim254.answered()) == sorted(bodies)  # each once
    assert statuses(aws, job) == [SENT] * len(bodies)


# --- 4. a claim write that succeeded but lost its answer is won ------------------------------


def test_a_claim_whose_answer_was_lost_is_won_not_busy(aws, simsaya, clock, monkeypatch):
    """botocore retries a claim write whose answer was lost (a 500, a reset): the retry finds the
    job holding our own token, and ConditionalCheckFailed must not read as BUSY."""
    table = table_module.table()
    real_update = table.update_item

    def lost_answer(**kwargs):
        if "prior_state" in kwargs.get("UpdateExpression", "") or "claim_token = :token" in \
                kwargs.get("UpdateExpression", ""):
            real_update(**kwargs)  # written, but the answer never came back: botocore sends it again
        return real_update(**kwargs)

    monkeypatch.setattr(table, "update_item", lost_answer)
    job = producer_job("sayasms", [{"number": "0712345678"}, {"number": "0722111222"}], body="Hello")
    report = send_job(job, MessageStore(), one_provider(saya(simsaya.url), clock), clock, GRACE)
    assert report.by_status == {SENT: 2}
    assert len(simsaya.messages()) == 2


# --- 5. a repeated number in a SayaSMS producer job ------------------------------------------


def test_a_repeated_number_in_a_sayasms_producer_job_is_rejected_and_every_answer_keeps_its_own_id(
        aws, simsaya, clock):
    job = producer_job("sayasms", [{"number": "0712345678"}, {"number": "+254712345678"},
                                   {"number": "0722111222"}], body="Your parcel is here")
    store = ReportingMessageStore(timedelta(hours=48))
    send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [SENT, REJECTED, SENT]
    assert item(aws, job, 2)["reason"] == "duplicate of message 1"
    sent = {m["to"]: m["message_id"] for m in simsaya.messages()}
    assert len(simsaya.messages()) == 2
    assert [item(aws, job, n)["provider_message_id"] for n in (1, 3)] == [sent["+254712345678"], sent["+254722111222"]]


def test_sayasms_answers_are_matched_by_position_never_by_the_number_alone(simsaya):
    outcomes = saya(simsaya.url).send("TUMA", msgs(["+254712345678", "+254712345678"]))
    ids = [o.provider_message_id for o in outcomes]
    assert len(set(ids)) == 2 and ids[0].endswith("_1") and ids[1].endswith("_2")


# --- 7. a producer job's rejected numbers are recorded even after a takeover --------------------


def test_a_producer_jobs_rejected_numbers_are_recorded_after_a_takeover(aws, simsaya, clock):
    job = producer_job("sayasms", [{"number": "12345"}, {"number": "0712345678"}], body="Hello")
    store = MessageStore()
    store.register(job, clock())
    store.claim(job, clock(), GRACE)  # the first attempt dies right after its claim, before any call
    clock.advance(seconds=31)

    send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)
    assert statuses(aws, job) == [REJECTED, SENT]  # never named in a call: the takeover sends it
    assert len(simsaya.messages()) == 1


# --- a sender killed before its provider call leaves nothing `unknown` ---------------------------
# The kill is a BaseException raised where the invocation stops (as the Lambda runtime's SIGKILL
# would stop it): nothing in the sender catches it, so nothing after it is written.


class Killed(BaseException):
    """The invocation is gone."""


class Killer:
    """Kills the invocation at the first `time_left()` (the check each provider request makes
    first) once `when()` holds, and at every one after."""

    def __init__(self, when=lambda: True):
        self.when, self.fired = when, False

    def time_left(self) -> float:
        if self.fired or self.when():
            self.fired = True
            raise Killed
        return 1_000.0


def test_a_sender_killed_between_its_claim_and_its_first_call_leaves_the_takeover_to_send_it(
        aws, simsaya, clock):
    job = producer_job("sayasms", [{"number": "0712345678"}, {"number": "0722111222"}], body="Hello")
    store = MessageStore()
    with pytest.raises(Killed):
        send_job(job, store, one_provider(saya(simsaya.url), clock, time_left=Killer().time_left), clock, GRACE)
    assert simsaya.requests() == []
    clock.advance(seconds=31)

    report = send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)

    assert report.by_status == {SENT: 2}
    assert statuses(aws, job) == [SENT, SENT]
    assert sorted(m["to"] for m in simsaya.messages()) == ["+254712345678", "+254722111222"]  # each once


def test_a_sender_killed_mid_call_leaves_only_that_calls_messages_unknown(aws, sim254, clock, monkeypatch):
    """254sms, one call at a time: the call for A goes out and the sender dies before its answer;
    B's call was never named, so the takeover sends B and says `unknown` only of A."""
    from tuma.providers import sms254 as sms254_module

    monkeypatch.setattr(sms254_module, "POOL_SIZE", 1)
    killer = Killer(when=lambda: False)
    real_post = Sms254._post

    def post(self, path, fields):
        real_post(self, path, fields)  # the request went out; its answer dies with the invocation
        killer.fired = True
        raise Killed

    monkeypatch.setattr(Sms254, "_post", post)
    job = producer_job("254sms", [{"number": "0712345678", "body": "A"}, {"number": "0722111222", "body": "B"}])
    store = MessageStore()
    with pytest.raises(Killed):
        send_job(job, store, one_provider(sms254(sim254.url), clock, time_left=killer.time_left), clock, GRACE)
    monkeypatch.setattr(Sms254, "_post", real_post)
    clock.advance(seconds=31)

    send_job(job, store, one_provider(sms254(sim254.url), clock), clock, GRACE)

    assert statuses(aws, job) == [UNKNOWN, SENT]
    assert item(aws, job, 1)["reason"] == DIED_MID_CALL
    assert sorted(call["body"]["message"] for call in sim254.answered()) == ["A", "B"]  # each once


def test_a_sender_killed_between_two_254sms_rounds_leaves_the_first_round_unknown_and_the_second_sent(
        aws, sim254, clock, monkeypatch):
    from tuma.providers import sms254 as sms254_module

    monkeypatch.setattr(sms254_module, "POOL_SIZE", 2)
    bodies = ["A", "B", "C", "D"]
    started, both_started = [0], threading.Barrier(2, timeout=10)
    real_post = Sms254._post

    def post(self, path, fields):
        started[0] += 1
        if started[0] <= 2:
            both_started.wait()  # the first round's two calls are both under way before either ends
        return real_post(self, path, fields)

    monkeypatch.setattr(Sms254, "_post", post)
    job = producer_job("254sms", [{"number": f"07120000{i:02d}", "body": b} for i, b in enumerate(bodies)])
    store = MessageStore()
    killer = Killer(when=lambda: started[0] >= 2)  # answered, then killed before the second round
    with pytest.raises(Killed):
        send_job(job, store, one_provider(sms254(sim254.url), clock, time_left=killer.time_left), clock, GRACE)
    assert sorted(call["body"]["message"] for call in sim254.answered()) == ["A", "B"]
    clock.advance(seconds=31)

    send_job(job, store, one_provider(sms254(sim254.url), clock), clock, GRACE)

    assert statuses(aws, job) == [UNKNOWN, UNKNOWN, SENT, SENT]  # A, B answered but never recorded
    assert sorted(call["body"]["message"] for call in sim254.answered()) == bodies  # each once


def test_an_intent_write_whose_answer_was_lost_is_done_and_the_call_goes_out(aws, sim254, clock, monkeypatch):
    """botocore retries the intent write after a lost answer: ADD to a set finds it done, the
    condition still holds, the call is made. The sender then dies before B's call: A (named) is
    unknown, B (never named) is sent by the takeover."""
    from tuma.providers import sms254 as sms254_module

    monkeypatch.setattr(sms254_module, "POOL_SIZE", 1)
    table = table_module.table()
    real_update, intents = table.update_item, []

    def lost_answer(**kwargs):
        if kwargs.get("UpdateExpression", "").startswith("ADD"):
            intents.append(kwargs["ExpressionAttributeValues"][":indices"])
            real_update(**kwargs)  # written, but the answer never came back: botocore sends it again
        return real_update(**kwargs)

    monkeypatch.setattr(table, "update_item", lost_answer)
    answered = []
    real_post = Sms254._post

    def post(self, path, fields):
        answered.append(real_post(self, path, fields))
        return answered[-1]

    monkeypatch.setattr(Sms254, "_post", post)
    job = producer_job("254sms", [{"number": "0712345678", "body": "A"}, {"number": "0722111222", "body": "B"}])
    store = MessageStore()
    killer = Killer(when=lambda: len(answered) == 1)
    with pytest.raises(Killed):
        send_job(job, store, one_provider(sms254(sim254.url), clock, time_left=killer.time_left), clock, GRACE)
    assert intents == [{1}] and answered[0]["statusCode"] == 101
    monkeypatch.setattr(table, "update_item", real_update)
    clock.advance(seconds=31)

    send_job(job, store, one_provider(sms254(sim254.url), clock), clock, GRACE)

    assert statuses(aws, job) == [UNKNOWN, SENT]
    assert sorted(call["body"]["message"] for call in sim254.answered()) == ["A", "B"]


def test_a_message_refused_by_an_earlier_attempt_is_sent_when_a_later_attempt_dies_before_calling(
        aws, simsaya, clock):
    """Attempt 1 names the message, SayaSMS answers 503 (not taken) and the claim closes `retry`;
    attempt 2 dies right after its claim; the takeover must not read attempt 1's call as its."""
    job = producer_job("sayasms", [{"number": "0712345678"}], body="Hello")
    store = MessageStore()
    simsaya.faults({"status": 503, "count": 1})
    with pytest.raises(ProviderUnavailable):
        send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)
    store.claim(job, clock(), GRACE)  # attempt 2 dies before any call
    clock.advance(seconds=31)

    send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [SENT]
    assert len(simsaya.messages()) == 1


def test_the_intent_costs_one_small_write_per_call_and_none_for_its_retry(aws, simsaya, clock, monkeypatch):
    """What the intent costs: a 503 retried at once carries the same messages, so it writes
    nothing more; and a first claim does not copy the job's 1,000 positions onto its item (every
    later write to the item would pay for ~4 KB of them)."""
    numbers = [f"+2547{i:08d}" for i in range(1000)]
    job = producer_job("sayasms", [{"number": n} for n in numbers], body="Hello")
    table = table_module.table()
    real_update, intents = table.update_item, []

    def counting(**kwargs):
        if kwargs.get("UpdateExpression", "").startswith("ADD"):
            intents.append(len(kwargs["ExpressionAttributeValues"][":indices"]))
        return real_update(**kwargs)

    monkeypatch.setattr(table, "update_item", counting)
    simsaya.faults({"status": 503, "count": 1})
    send_job(job, MessageStore(), one_provider(saya(simsaya.url), clock, retry_pauses=(0,)), clock, GRACE)

    assert intents == [1000]  # the call and its retry after the 503: one write
    assert statuses(aws, job) == [SENT] * 1000 and len(simsaya.messages()) == 1000
    claim_key = {"pk": message_pk(job.tenant_id, job.request_id), "sk": f"J#{job.identity}"}
    claim_item = table.get_item(Key=claim_key)["Item"]
    assert "pending" not in claim_item or claim_item["pending"] == []


def test_an_invocation_whose_claim_was_taken_over_makes_no_more_calls(aws, simsaya, clock):
    """The intent write is guarded by the claim token: a slow holder whose claim went stale and
    was taken over cannot name (so cannot send) what the new holder now sends."""
    job = producer_job("sayasms", [{"number": "0712345678"}], body="Hello")
    store = MessageStore()
    stale = store.claim(job, clock(), GRACE)
    clock.advance(seconds=31)
    send_job(job, store, one_provider(saya(simsaya.url), clock), clock, GRACE)  # the takeover sends it

    attempts = one_provider(saya(simsaya.url), clock).send(
        job.sender, stale.to_send, job.provider, lambda recipients: store.mark_calling(job, stale, recipients))

    assert [(a.answer.status, a.answer.error_code) for a in attempts] == [(NOT_TAKEN, NO_TIME)]
    assert len(simsaya.messages()) == 1


# --- 11. every provider-call outcome is classified ----------------------------------------------


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n"
    b"Connection: close\r\n\r\nnot gzip!",
], ids=["ChunkedEncodingError", "ContentDecodingError"])
def test_an_unexpected_transport_error_after_the_request_went_out_is_ambiguous(raw, answer):
    server = raw(answer)
    with pytest.raises(ProviderAmbiguous) as raised:
        saya(server.url).send("TUMA", msgs(["+254712345678"]))
    assert raised.value.code == "broken_answer"
    assert [o.status for o in sms254(server.url).send("TUMA", msgs(["+254712345678"]))] == [UNKNOWN]


def test_one_254sms_call_failing_in_the_pool_keeps_its_siblings_confirmed_answers(sim254, monkeypatch):
    real_post = Sms254._post

    def post(self, path, fields):
        if fields.get("message") == "B":
            raise KeyError("a surprise in one call")
        return real_post(self, path, fields)

    monkeypatch.setattr(Sms254, "_post", post)
    outcomes = sms254(sim254.url).send("TUMA", [OutgoingMessage("+254712345678", "A"),
                                                OutgoingMessage("+254722111222", "B")])
    assert [(o.status, o.error_code) for o in outcomes] == [(SENT, None), (UNKNOWN, "unexpected_error")]


def test_an_unexpected_exception_from_a_provider_is_classified_not_left_in_flight(aws, simsaya, clock, monkeypatch):
    monkeypatch.setattr(SayaSms, "_request", lambda *a, **k: (_ for _ in ()).throw(AttributeError("bug")))
    job = producer_job("sayasms", [{"number": "0712345678"}], body="Hello")
    report = send_job(job, MessageStore(), one_provider(saya(simsaya.url), clock), clock, GRACE)
    assert report.by_status == {UNKNOWN: 1}
    assert item(aws, job, 1)["error_code"] == "unexpected_error"


def test_a_stale_keep_alive_connection_failing_before_the_request_was_written_is_not_taken(simsaya, monkeypatch):
    import urllib3.connection

    adapter = saya(simsaya.url)
    adapter.send("TUMA", msgs(["+254712345678"]))  # leaves a keep-alive connection in the pool
    real_request = urllib3.connection.HTTPConnection.request

    def closed_by_the_provider(self, *args, **kwargs):
        self.sock.shutdown(socket.SHUT_RDWR)  # the provider closed it while it sat idle
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", closed_by_the_provider)
    with pytest.raises(ProviderUnavailable) as raised:
        adapter.send("TUMA", msgs(["+254722111222"]))
    assert raised.value.code == "not_sent"
    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", real_request)
    assert len(simsaya.requests()) == 1


# --- 12. no redirects on provider calls ----------------------------------------------------------


@pytest.mark.parametrize("status, kind", [(307, ProviderUnavailable), (308, ProviderUnavailable),
                                          (302, ProviderAmbiguous), (303, ProviderAmbiguous)])
def test_provider_calls_never_follow_redirects(raw, sim254, status, kind):
    elsewhere = raw(http_answer(200, b'{"statusCode": 101, "messageDetails": []}'))
    moved = raw(http_answer(status, Location=elsewhere.url + "/sendsms"))
    with pytest.raises(kind):
        saya(moved.url).send("TUMA", msgs(["+254712345678"]))
    outcomes = sms254(moved.url).send("TUMA", msgs(["+254712345678"]))
    assert [o.status for o in outcomes] == [NOT_TAKEN if kind is ProviderUnavailable else UNKNOWN]
    assert (moved.requests, elsewhere.requests) == (2, 0)  # 254sms's credentials never went elsewhere


# --- 14. the two strict xfails' promises, and one timeout ----------------------------------------


def test_a_late_sent_never_overwrites_a_later_status(aws, simsaya, clock):
    """A second writer (an invocation whose claim was taken over) records `sent` after a delivery
    report: the message stays `delivered`, the late `sent` only joins its history."""
    job = producer_job("sayasms", [{"number": "0712345678"}], body="Hello")
    store = MessageStore()
    store.register(job, clock())
    claim = store.claim(job, clock(), GRACE)
    from tuma.domain.sending import Outcome
    store.record(job, claim, [(job.recipients[0], Outcome(SENT, "sayasms", provider_message_id="p1"))], clock())
    aws.table.update_item(Key={"pk": recipient_pk(job.tenant_id, job.request_id, 1), "sk": recipient_sk(1)},
                          UpdateExpression="SET #s = :d", ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":d": DELIVERED})
    clock.advance(seconds=5)
    store.record(job, claim, [(job.recipients[0], Outcome(SENT, "sayasms", provider_message_id="p1"))], clock())
    stored = item(aws, job, 1)
    assert stored["status"] == DELIVERED
    assert stored["history"][-1]["note"] == "late: the message is already delivered; status unchanged"


def test_the_sender_timeout_and_its_claim_grace_come_from_one_value_in_the_template(functions, aws, context):
    """template.yaml sets the sender's Timeout once; the claim grace and the circuit's probe grace
    are read from the Lambda context, so they cannot drift from it (no SENDER_TIMEOUT_S copy)."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, tag, node: None)
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=Loader)
    sender = template["Resources"]["SenderFunction"]["Properties"]
    assert "SENDER_TIMEOUT_S" not in sender["Environment"]["Variables"]
    assert sender["Timeout"] <= template["Resources"]["SendQueue"]["Properties"]["VisibilityTimeout"]

    app = functions("sender")
    context.get_remaining_time_in_millis = lambda: 44_987  # a function whose Timeout is 45 s
    app.handler(sqs_event(["not a job"]), context)  # any batch: the handler reads the context first
    assert app._grace["claim"] == timedelta(seconds=45) + CLOCK_MARGIN
    assert app.BREAKER.settings.probe_grace == timedelta(seconds=45)


# --- a request named and then not made leaves no name behind -----------------------------------------


@pytest.mark.parametrize("refusal", ["no time left after the intent write", "intent write's answer lost"])
def test_a_request_named_and_then_not_made_leaves_its_messages_to_the_takeover_not_unknown(
        aws, simsaya, clock, monkeypatch, refusal):
    """The intent write names the messages; then the request is not made after all: the time check
    after the write finds too little left, or the write's answer never came (it may have been
    applied). The invocation dies before closing its claim. Those messages never left: the takeover
    must send them, not call them `unknown` (before: both unknown, no provider call)."""
    job = producer_job("sayasms", [{"number": "0712345678"}, {"number": "0722111222"}], body="Hello")
    store = MessageStore()
    restore = []
    if refusal == "no time left after the intent write":
        real_mark, left = store.mark_calling, {"s": 1_000.0}

        def mark_then_time_runs_short(*args):
            named = real_mark(*args)
            left["s"] = 0.0  # the write took what was left
            return named

        monkeypatch.setattr(store, "mark_calling", mark_then_time_runs_short)
        time_left = lambda: left["s"]  # noqa: E731
    else:
        from botocore.exceptions import ReadTimeoutError

        table = table_module.table()
        real_update = table.update_item

        def applied_then_no_answer(**kwargs):
            answer = real_update(**kwargs)
            if kwargs.get("UpdateExpression", "").startswith("ADD #called"):
                raise ReadTimeoutError(endpoint_url="https://dynamodb")
            return answer

        monkeypatch.setattr(table, "update_item", applied_then_no_answer)
        restore.append(lambda: monkeypatch.setattr(table, "update_item", real_update))
        time_left = lambda: 1_000.0  # noqa: E731

    def die(*_):
        raise Killed

    monkeypatch.setattr(store, "finish", die)
    with pytest.raises(Killed):
        send_job(job, store, one_provider(saya(simsaya.url), clock, time_left=time_left, call_budget_s=10),
                 clock, GRACE)
    assert simsaya.requests() == []
    for undo in restore:
        undo()
    clock.advance(seconds=31)

    send_job(job, MessageStore(), one_provider(saya(simsaya.url), clock), clock, GRACE)

    assert statuses(aws, job) == [SENT, SENT]
    assert sorted(m["to"] for m in simsaya.messages()) == ["+254712345678", "+254722111222"]  # each once
