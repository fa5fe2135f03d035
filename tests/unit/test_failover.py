"""Failover and the circuit breaker (tuma.domain.failover, tuma.domain.circuit,
tuma.store.circuit) with the real simulators and the breaker's state in moto's DynamoDB.

What must hold: a message the first provider definitively did not take (refused connection,
429/5xx past the retry budget, an account error) is sent by the other and the record says so; a
message the provider may have taken (no answer) is never sent by the other; a pinned request
never fails over; a circuit opens after the threshold, keeps calls away during the cool-off, lets
exactly one probe through after it, and closes or reopens on the probe's result."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from conftest import Clock, SAYASMS_API_KEY, SMS254_API_KEY, SMS254_USERNAME, utc
from tuma.domain.circuit import CLOSED, HALF_OPEN, OPEN, CircuitSettings
from tuma.domain.failover import Dispatcher
from tuma.domain.jobs import SendJob, parse_job
from tuma.domain.messages import accept_send
from tuma.domain.providers import ProviderUnavailable
from tuma.domain.routing import policy_from
from tuma.domain.sending import send_job
from tuma.domain.status import FAILED, SENT, UNKNOWN
from tuma.providers.sayasms import SayaSms
from tuma.providers.sms254 import Sms254
from tuma.store import messages as message_store
from tuma.store.circuit import DynamoBreaker, read_circuit
from tuma.store.sending import MessageStore
from tuma.store.table import message_pk, recipient_pk, recipient_sk

GRACE = timedelta(seconds=30)
T0 = utc(2026, 3, 13, 14, 30, 0)
SAFARICOM, AIRTEL = "+254712345678", "+254733123456"
SETTINGS = CircuitSettings(threshold=2, cooloff=timedelta(seconds=60), probe_grace=timedelta(seconds=30))




class Gateway:
    """The sender's parts wired as in functions/sender: providers, policy, breaker, store."""

    def __init__(self, saya_url: str, sms254_url: str, rules: str = "", default: str = "sayasms"):
        self.clock = Clock(T0)
        self.pauses: list[float] = []
        self.breaker = DynamoBreaker(SETTINGS)
        self.providers = {"sayasms": SayaSms(saya_url, SAYASMS_API_KEY),
                          "254sms": Sms254(sms254_url, SMS254_USERNAME, SMS254_API_KEY)}
        self.dispatcher = Dispatcher(self.providers, policy_from(default, rules), self.breaker, self.clock,
                                     pause=self.pauses.append)
        self.store = MessageStore()

    def send(self, job: SendJob):
        return send_job(job, self.store, self.dispatcher, self.clock, GRACE,
                        estimate_cost=lambda provider, body: "KES 0.80" if provider == "254sms" else None)


def make_job(numbers=(SAFARICOM,), pin: str | None = None, body: str = "Hello from Tuma") -> SendJob:
    payload = {"to": list(numbers), "from": "TUMA", "body": body, **({"provider": pin} if pin else {})}
    accepted = accept_send(payload, "tenant-a", T0)
    message_store.put_request(accepted, "send", T0)
    (job,) = accepted.jobs()
    return parse_job(json.dumps(job), "sqs-message-1")


def item(aws, job: SendJob, n: int = 1) -> dict:
    return aws.item(recipient_pk(job.tenant_id, job.request_id, n), recipient_sk(n))


@pytest.fixture
def gateway(aws, simsaya, sim254) -> Gateway:
    return Gateway(simsaya.url, sim254.url)


# --- failover --------------------------------------------------------------------------------


def test_sayasms_refusing_connections_sends_through_254sms_and_records_it(aws, closed_url, sim254):
    gateway = Gateway(closed_url, sim254.url)
    job = make_job()

    report = gateway.send(job)

    assert report.counts == {("254sms", SENT): 1}
    assert report.failovers == {("sayasms", "254sms"): 1}
    stored = item(aws, job)
    assert (stored["status"], stored["provider"], stored["failover_from"]) == (SENT, "254sms", "sayasms")
    assert stored["failover_reason"] == "sayasms: connection failed: refused"
    assert [(e["status"], e.get("provider")) for e in stored["history"]] == [
        ("sending", "sayasms"), ("sending", "254sms"), ("sent", "254sms")]
    assert (stored["cost"], stored["cost_estimated"]) == ("KES 0.80", True)  # 254sms reports no cost
    (call,) = sim254.requests()
    assert call["body"]["phone"] == SAFARICOM[1:]
    assert gateway.pauses == []  # a refused connection is not retried: it is down


def test_a_503_is_retried_at_once_and_fails_over_past_the_budget(aws, gateway, simsaya, sim254):
    simsaya.faults({"status": 503})
    job = make_job()

    gateway.send(job)

    assert len(simsaya.requests()) == 3  # the call and two retries
    assert gateway.pauses == [0.25, 1.0]
    assert (item(aws, job)["provider"], item(aws, job)["failover_reason"]) == ("254sms", "sayasms: HTTP 503")
    assert len(sim254.requests()) == 1


def test_a_429_that_clears_within_the_budget_stays_with_the_first_provider(aws, gateway, simsaya, sim254):
    simsaya.faults({"status": 429, "count": 1})
    job = make_job()

    gateway.send(job)

    assert len(simsaya.requests()) == 2
    assert len(simsaya.answered()) == 1
    stored = item(aws, job)
    assert (stored["provider"], stored["cost"]) == ("sayasms", "KES 0.90")  # SayaSMS's own figure
    assert "failover_from" not in stored and "cost_estimated" not in stored
    assert sim254.requests() == []


@pytest.mark.parametrize("first, fault", [
    ("sayasms", {"error": "unauthorized"}), ("sayasms", {"error": "insufficient_balance"}),
    ("254sms", {"error": "X001"}), ("254sms", {"error": "X002"}), ("254sms", {"error": "X003"}),
])
def test_account_errors_fail_over_to_the_other_provider(aws, simsaya, sim254, first, fault):
    gateway = Gateway(simsaya.url, sim254.url, default=first)
    (simsaya if first == "sayasms" else sim254).faults(fault)
    job = make_job()

    gateway.send(job)

    other = "254sms" if first == "sayasms" else "sayasms"
    stored = item(aws, job)
    assert (stored["status"], stored["provider"], stored["failover_from"]) == (SENT, other, first)
    assert len((sim254 if other == "254sms" else simsaya).answered()) == 1


def test_a_request_the_provider_finds_malformed_fails_without_failover(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url, default="254sms")
    sim254.faults({"error": "X000"})
    job = make_job()

    gateway.send(job)

    assert (item(aws, job)["status"], item(aws, job)["error_code"]) == (FAILED, "X000")
    assert simsaya.requests() == []


def test_a_pinned_request_never_fails_over(aws, closed_url, sim254):
    gateway = Gateway(closed_url, sim254.url)
    job = make_job(pin="sayasms")

    with pytest.raises(ProviderUnavailable, match="1 message\\(s\\) not taken: connection failed: refused"):
        gateway.send(job)

    assert sim254.requests() == []
    assert item(aws, job) is None  # still pending: the job goes back to the queue


def test_an_account_error_on_a_pinned_request_fails_the_message(aws, gateway, simsaya, sim254):
    simsaya.faults({"error": "unauthorized"})
    job = make_job(pin="sayasms")

    gateway.send(job)

    assert (item(aws, job)["status"], item(aws, job)["error_code"]) == (FAILED, "unauthorized")
    assert sim254.requests() == []


def test_no_answer_makes_the_message_unknown_and_the_other_provider_is_never_called(
        aws, gateway, simsaya, sim254, short_read_timeout):
    simsaya.faults({"hang": True, "count": 1})
    job = make_job()

    report = gateway.send(job)

    assert report.counts == {("sayasms", UNKNOWN): 1}
    stored = item(aws, job)
    assert (stored["status"], stored["provider"], stored["error_code"]) == (UNKNOWN, "sayasms", "read_timeout")
    assert "no answer within 0.5 s" in stored["reason"]
    assert len(simsaya.requests()) == 1
    assert sim254.requests() == []


def test_both_providers_down_leaves_the_job_to_the_queue(aws, closed_url):
    gateway = Gateway(closed_url, closed_url)
    job = make_job()

    with pytest.raises(ProviderUnavailable):
        gateway.send(job)

    assert item(aws, job) is None


def test_routing_rules_split_a_job_by_network_one_call_per_provider(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url, rules="Airtel=254sms")
    job = make_job(numbers=(SAFARICOM, AIRTEL))

    assert gateway.send(job).counts == {("sayasms", SENT): 1, ("254sms", SENT): 1}

    assert (item(aws, job, 1)["provider"], item(aws, job, 2)["provider"]) == ("sayasms", "254sms")
    assert [c["body"]["to"] for c in simsaya.requests()] == [[SAFARICOM]]
    assert [c["body"]["phone"] for c in sim254.requests()] == [AIRTEL[1:]]


# --- the circuit breaker ---------------------------------------------------------------------


def test_the_circuit_opens_after_the_threshold_and_keeps_calls_away(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    simsaya.faults({"status": 503})
    for _ in range(SETTINGS.threshold):
        gateway.send(make_job())
    assert read_circuit("sayasms")["state"] == OPEN
    calls_so_far = len(simsaya.requests())

    gateway.clock.advance(seconds=59)
    job = make_job()
    gateway.send(job)

    assert len(simsaya.requests()) == calls_so_far  # no call while open
    stored = item(aws, job)
    assert (stored["provider"], stored["failover_reason"]) == ("254sms", "sayasms: circuit open")


def test_after_the_cooloff_one_probe_closes_the_circuit_when_it_succeeds(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    simsaya.faults({"status": 503})
    for _ in range(SETTINGS.threshold):
        gateway.send(make_job())
    simsaya.faults({})  # SayaSMS is back

    gateway.clock.advance(seconds=60)
    job = make_job()
    gateway.send(job)

    assert item(aws, job)["provider"] == "sayasms"
    assert read_circuit("sayasms") == {"state": CLOSED, "since": gateway.clock.now.isoformat(), "failures": 0}


def test_a_failed_probe_opens_the_circuit_for_another_cooloff(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    simsaya.faults({"status": 503})
    for _ in range(SETTINGS.threshold):
        gateway.send(make_job())
    gateway.clock.advance(seconds=60)
    before = len(simsaya.requests())

    gateway.send(make_job())  # the probe: 503 again (with its retries), then 254sms

    assert len(simsaya.requests()) == before + 3
    assert read_circuit("sayasms")["state"] == OPEN
    assert read_circuit("sayasms")["since"] == gateway.clock.now.isoformat()
    gateway.clock.advance(seconds=30)
    gateway.send(make_job())
    assert len(simsaya.requests()) == before + 3  # open again: no call


def test_only_one_sender_gets_the_probe(aws):
    breaker = DynamoBreaker(SETTINGS)
    for _ in range(SETTINGS.threshold):
        breaker.record("sayasms", breaker.gate("sayasms", T0), healthy=False, now=T0)
    later = T0 + timedelta(seconds=61)

    gates = [breaker.gate("sayasms", later) for _ in range(3)]

    assert [g.allowed for g in gates] == [True, False, False]
    assert gates[0].probe and read_circuit("sayasms")["state"] == HALF_OPEN


def test_a_probe_whose_sender_died_is_replaced_after_the_grace(aws):
    breaker = DynamoBreaker(SETTINGS)
    for _ in range(SETTINGS.threshold):
        breaker.record("sayasms", breaker.gate("sayasms", T0), healthy=False, now=T0)
    probe_at = T0 + timedelta(seconds=61)
    assert breaker.gate("sayasms", probe_at).probe  # and then its sender dies

    assert not breaker.gate("sayasms", probe_at + timedelta(seconds=29)).allowed
    assert breaker.gate("sayasms", probe_at + timedelta(seconds=30)).probe


def test_a_healthy_call_resets_the_count_so_failures_must_be_consecutive(aws):
    breaker = DynamoBreaker(SETTINGS)
    breaker.record("254sms", breaker.gate("254sms", T0), healthy=False, now=T0)
    breaker.record("254sms", breaker.gate("254sms", T0), healthy=True, now=T0)
    breaker.record("254sms", breaker.gate("254sms", T0), healthy=False, now=T0)

    assert read_circuit("254sms")["state"] == CLOSED
    assert read_circuit("254sms")["failures"] == 1


def test_a_failure_whose_count_lost_its_answer_is_counted_once(aws, monkeypatch):
    """botocore sends the count's write again when its answer is lost: counted twice, a circuit
    would open a failure early (and, on a flaky network, at a third of its threshold)."""
    from test_batch_progress import moto_faults

    breaker = DynamoBreaker(SETTINGS)
    lost = moto_faults(monkeypatch, "update_item", lambda args, kwargs: "ADD" in str(args + tuple(kwargs.values())),
                       "lost")

    breaker.record("254sms", breaker.gate("254sms", T0), healthy=False, now=T0)

    assert lost  # applied, its answer lost, sent again
    assert read_circuit("254sms") == {"state": CLOSED, "since": None, "failures": 1}


def test_a_long_outage_does_not_grow_the_circuit_item(aws):
    """A failed probe re-opens the circuit without counting: the count only decides when a closed
    circuit opens, and each counted failure keeps an id."""
    breaker = DynamoBreaker(SETTINGS)
    for _ in range(SETTINGS.threshold):
        breaker.record("254sms", breaker.gate("254sms", T0), healthy=False, now=T0)
    at = T0
    for _ in range(20):
        at += timedelta(minutes=10)
        gate = breaker.gate("254sms", at)
        assert gate.probe
        breaker.record("254sms", gate, healthy=False, now=at)

    assert read_circuit("254sms") == {"state": OPEN, "since": at.isoformat(), "failures": SETTINGS.threshold}


# --- what ends `failed`, and what waits for the job's next delivery ----------------------------


def test_a_busy_provider_and_a_refusing_one_leave_the_message_for_a_later_try(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    simsaya.faults({"status": 503})  # busy: may take it later
    sim254.faults({"error": "X001"})  # refuses our key

    with pytest.raises(ProviderUnavailable):
        gateway.send(job := make_job())

    assert item(aws, job) is None  # not `failed`: the job is retried


def test_an_account_error_while_the_other_circuit_is_open_waits_for_the_circuit(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    for _ in range(SETTINGS.threshold):
        gateway.breaker.record("254sms", gateway.breaker.gate("254sms", T0), healthy=False, now=T0)
    simsaya.faults({"error": "insufficient_balance"})

    with pytest.raises(ProviderUnavailable):
        gateway.send(job := make_job())

    assert item(aws, job) is None
    assert sim254.requests() == []


def test_every_provider_refusing_the_account_fails_the_message(aws, simsaya, sim254):
    gateway = Gateway(simsaya.url, sim254.url)
    simsaya.faults({"error": "unauthorized"})
    sim254.faults({"error": "X003"})

    gateway.send(job := make_job())

    assert (item(aws, job)["status"], item(aws, job)["error_code"]) == (FAILED, "X003")


def test_no_call_starts_without_the_time_to_finish_it(aws, gateway, simsaya, sim254):
    gateway.dispatcher.time_left, gateway.dispatcher.call_budget_s = (lambda: 10.0), 16.0

    with pytest.raises(ProviderUnavailable, match="no time left in this invocation"):
        gateway.send(job := make_job())

    assert simsaya.requests() == sim254.requests() == []
    assert item(aws, job) is None
    assert read_circuit("sayasms")["failures"] == 0  # not the provider's fault


def test_a_retry_or_failover_that_would_not_fit_waits_for_the_next_delivery(aws, gateway, simsaya, sim254):
    left = iter([20.0, 20.0, 10.0, 10.0])  # enough for the first call only (asked before and after its intent)
    gateway.dispatcher.time_left, gateway.dispatcher.call_budget_s = (lambda: next(left)), 16.0
    simsaya.faults({"status": 503})

    with pytest.raises(ProviderUnavailable):
        gateway.send(job := make_job())

    assert len(simsaya.requests()) == 1 and gateway.pauses == []
    assert sim254.requests() == []
    assert item(aws, job) is None


# --- the breaker's own failures and races ------------------------------------------------------


def test_a_late_healthy_call_does_not_close_a_circuit_others_opened(aws):
    breaker = DynamoBreaker(SETTINGS)
    breaker.record("sayasms", breaker.gate("sayasms", T0), healthy=False, now=T0)
    slow = breaker.gate("sayasms", T0)  # a call starts, seeing one failure
    breaker.record("sayasms", breaker.gate("sayasms", T0), healthy=False, now=T0)  # others open it
    assert read_circuit("sayasms")["state"] == OPEN

    breaker.record("sayasms", slow, healthy=True, now=T0 + timedelta(seconds=5))

    assert read_circuit("sayasms")["state"] == OPEN


def test_a_breaker_that_cannot_reach_its_table_lets_calls_through(aws, gateway, simsaya, monkeypatch):
    from botocore.exceptions import ClientError

    from tuma.store import circuit

    def unreachable(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                          "GetItem")
    monkeypatch.setattr(circuit, "read_circuit", unreachable)
    monkeypatch.setattr(circuit, "table", unreachable)

    gateway.send(job := make_job())

    assert (item(aws, job)["status"], item(aws, job)["provider"]) == (SENT, "sayasms")


# --- what the providers answer, read defensively -----------------------------------------------


@pytest.mark.parametrize("given, stored", [("KES 0.90", "KES 0.90"), (0.9, "KES 0.90"), ("free", None), (None, None)])
def test_sayasmss_cost_is_kept_as_an_amount_in_kes_or_estimated(given, stored):
    from tuma.providers.sayasms import _outcome

    assert _outcome({"status": "queued", "message_id": "msg_1", "cost": given}).cost == stored
