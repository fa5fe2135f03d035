"""The simulators' random faults (the fault suite's knobs): a `rate` share of calls, a seeded mix of
fault kinds, a record of what each call got, hangs that last until the client gives up, and
SayaSMS delivery reports duplicated and reordered for a random share.

Each test starts its own simulator on a free loopback port; nothing here leaves 127.0.0.1."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.common import RunningSimulator, start
from local.simulators.sayasms import SayaSmsSimulator
from local.simulators.sms254 import Sms254Simulator
from tests.unit.test_simulators import AUTH, KEY, Receiver, callback_log, recorded, wait_for

CREDENTIALS = {"username": "tuma", "api_key": "KEY254"}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def sms254() -> Iterator[RunningSimulator]:
    with start(Sms254Simulator(username="tuma", api_key="KEY254", credits=100_000)) as running:
        yield running


@pytest.fixture
def saya() -> Iterator[RunningSimulator]:
    with start(SayaSmsSimulator(api_key=KEY, balance="100000.00")) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def set_faults(http: requests.Session, sim: RunningSimulator, spec: dict[str, Any]) -> None:
    answer = http.post(f"{sim.url}/_sim/faults", json=spec)
    assert answer.status_code == 200, answer.text


def credits_calls(http: requests.Session, sim: RunningSimulator, n: int) -> list[int]:
    return [http.post(f"{sim.url}/credits", json=CREDENTIALS).status_code for _ in range(n)]


def test_rate_faults_only_that_share_of_calls_and_a_seed_repeats_the_draw(http, sms254):
    set_faults(http, sms254, {"status": 503, "rate": 0.25, "seed": 7})
    first = credits_calls(http, sms254, 400)
    set_faults(http, sms254, {"status": 503, "rate": 0.25, "seed": 7})
    again = credits_calls(http, sms254, 400)

    assert first == again
    assert 60 <= first.count(503) <= 140 and set(first) == {200, 503}
    assert http.get(f"{sms254.url}/_sim/faults").json() == {"faults": {"status": 503, "rate": 0.25, "seed": 7}}


def test_rate_with_count_stops_after_count_faulted_calls(http, sms254):
    set_faults(http, sms254, {"status": 503, "rate": 0.5, "count": 3, "seed": 1})
    statuses = credits_calls(http, sms254, 40)

    assert statuses.count(503) == 3
    assert http.get(f"{sms254.url}/_sim/faults").json() == {"faults": {}}


def test_a_mix_gives_each_call_at_most_one_fault_in_its_share_and_records_which(http, saya):
    set_faults(http, saya, {"seed": 3, "mix": [{"status": 503, "rate": 0.3}, {"drop": True, "rate": 0.2},
                                                {"reset": True, "rate": 0.1}]})
    outcomes = Counter()
    for _ in range(300):
        try:
            outcomes[http.get(f"{saya.url}/v1/account/balance", headers=AUTH, timeout=5).status_code] += 1
        except requests.ConnectionError:
            outcomes["no answer"] += 1

    faults = Counter(r.get("fault") for r in recorded(http, saya))
    assert sum(faults.values()) == 300
    assert 60 <= faults["status:503"] <= 120 and 35 <= faults["drop"] <= 85 and 12 <= faults["reset"] <= 50
    assert set(faults) == {None, "status:503", "drop", "reset"}
    assert outcomes[503] == faults["status:503"] and outcomes["no answer"] == faults["drop"] + faults["reset"]
    assert http.get(f"{saya.url}/_sim/faults").json()["faults"]["mix"][1] == {"drop": True, "rate": 0.2}


def test_records_say_what_each_call_was_answered_and_unanswered_calls_have_no_status(http, saya):
    set_faults(http, saya, {"seed": 5, "mix": [{"status": 503, "rate": 0.5}, {"drop": True, "rate": 0.5}]})
    for _ in range(20):
        try:
            http.post(f"{saya.url}/v1/messages", headers=AUTH, timeout=5,
                      json={"to": ["+254712345678"], "from": "MYSHOP", "body": "Hi"})
        except requests.ConnectionError:
            pass
    set_faults(http, saya, {})
    http.post(f"{saya.url}/v1/messages", headers=AUTH, json={"to": ["+254712345678"], "from": "MYSHOP", "body": "Hi"})

    entries = recorded(http, saya)
    assert all(e["status"] == 503 and e["response"]["error"]["code"] == "simulated_fault"
               for e in entries if e.get("fault") == "status:503")
    assert all("status" not in e and "response" not in e for e in entries if e.get("fault") == "drop")
    assert entries[-1]["status"] == 200 and entries[-1]["response"]["recipients"][0]["status"] == "queued"


def _handler_threads() -> int:
    return sum("process_request" in t.name for t in threading.enumerate())


def test_a_hang_ends_when_the_client_gives_up(http, sms254):
    set_faults(http, sms254, {"hang": True, "rate": 1.0})
    before = _handler_threads()
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(f"{sms254.url}/credits", json=CREDENTIALS, timeout=0.3)
    http.close()  # the client lets go of the connection, as a timed-out provider client does

    wait_for(_handler_threads, lambda n: n <= before, timeout=3)
    assert http.get(f"{sms254.url}/_sim/faults").json()["faults"] == {"hang": True, "rate": 1.0}
    assert [r["fault"] for r in recorded(http, sms254)] == ["hang"]


@pytest.mark.parametrize("spec", [
    {"status": 503, "rate": 1.5}, {"status": 503, "rate": -0.1}, {"status": 503, "rate": True},
    {"mix": [{"status": 503, "rate": 0.6}, {"drop": True, "rate": 0.5}]},
    {"mix": [{"status": 503}]}, {"mix": [{"status": 503, "rate": 0.1}], "status": 500},
    {"mix": {"status": 503}}, {"status": 503, "seed": "1"},
])
def test_bad_rate_and_mix_specs_are_400(http, saya, spec):
    assert http.post(f"{saya.url}/_sim/faults", json=spec).status_code == 400


def _send_bulk(http: requests.Session, sim: RunningSimulator, receiver: Receiver, n: int) -> dict:
    return http.post(f"{sim.url}/v1/messages/bulk", headers=AUTH, json={
        "from": "MYSHOP", "callback_url": receiver.url,
        "messages": [{"to": f"+2547{12000000 + i}", "body": f"Hi {i}"} for i in range(n)]}).json()


def test_delivery_reports_duplicated_and_reordered_for_a_random_share(http, saya, receiver):
    assert http.post(f"{saya.url}/_sim/callbacks", json={
        "early": True, "delay_ms": 0, "duplicate": 0.1, "reorder": 0.1, "seed": 11}).status_code == 200
    sent = _send_bulk(http, saya, receiver, 300)

    log = callback_log(http, saya)
    per_event = Counter((e["payload"]["message_id"], e["payload"]["event"]) for e in log)
    firsts: dict[str, str] = {}
    for entry in log:
        firsts.setdefault(entry["payload"]["message_id"], entry["payload"]["event"])

    assert {m["message_id"] for m in sent["messages"]} == set(firsts)
    assert len(per_event) == 900 and set(per_event.values()) == {1, 2}
    assert 50 <= sum(n == 2 for n in per_event.values()) <= 130
    reversed_ = sum(event == "message.delivered" for event in firsts.values())
    assert 15 <= reversed_ <= 50 and set(firsts.values()) == {"message.queued", "message.delivered"}


def test_delivery_report_shares_repeat_with_the_same_seed(http, saya, receiver):
    def run() -> list[tuple[int, str]]:
        assert http.post(f"{saya.url}/_sim/callbacks", json={
            "early": True, "delay_ms": 0, "duplicate": 0.2, "reorder": 0.2, "seed": 4}).status_code == 200
        http.delete(f"{saya.url}/_sim/callbacks/log")
        _send_bulk(http, saya, receiver, 50)
        ids = {}
        return [(ids.setdefault(e["payload"]["message_id"], len(ids)), e["payload"]["event"])
                for e in callback_log(http, saya)]

    assert run() == run()


@pytest.mark.parametrize("spec", [{"duplicate": 1.5}, {"reorder": -0.2}, {"seed": "x"}, {"duplicate": "yes"}])
def test_bad_delivery_report_shares_are_400(http, saya, spec):
    assert http.post(f"{saya.url}/_sim/callbacks", json=spec).status_code == 400


def test_booleans_still_mean_all_or_none(http, saya, receiver):
    assert http.post(f"{saya.url}/_sim/callbacks", json={
        "early": True, "delay_ms": 0, "duplicate": True, "reorder": True}).status_code == 200
    _send_bulk(http, saya, receiver, 2)
    events = [e["payload"]["event"] for e in callback_log(http, saya)]
    assert events[:4] == ["message.delivered"] * 4 and len(events) == 12


def test_report_concurrency_bounds_the_posts_in_flight(http, saya):
    """A slow webhook sees at most `concurrency` reports at once, however many sends report."""
    in_flight, peak, lock = [0], [0], threading.Lock()
    receiver = Receiver()
    original = receiver._server.RequestHandlerClass.do_POST

    def slow_post(handler) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        threading.Event().wait(0.05)
        # Counted out before answering: the simulator frees its slot once it has the answer, and
        # may start its next POST before this thread would get past original().
        with lock:
            in_flight[0] -= 1
        original(handler)

    receiver._server.RequestHandlerClass.do_POST = slow_post
    try:
        assert http.post(f"{saya.url}/_sim/callbacks", json={"delay_ms": 0, "concurrency": 2}).status_code == 200
        for i in range(6):
            http.post(f"{saya.url}/v1/messages", headers=AUTH, json={
                "to": [f"+25471200000{i}"], "from": "MYSHOP", "body": "Hi", "callback_url": receiver.url})
        wait_for(lambda: callback_log(http, saya), lambda log: len(log) == 18, timeout=10)
    finally:
        receiver.stop()

    assert peak[0] <= 2
