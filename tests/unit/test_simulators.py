"""The provider simulators answer as the seed documents say, and their fault and callback knobs work.

Each test starts its own simulator on a free loopback port; nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from local.simulators.common import RunningSimulator, start
from local.simulators.sayasms import SayaSmsSimulator, network, segments
from local.simulators.sms254 import ERRORS, Sms254Simulator

REPO = Path(__file__).resolve().parents[2]
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
KEY = "sk_test_abc"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # never route loopback calls through a proxy from the environment
    yield session
    session.close()


@pytest.fixture
def sms254() -> Iterator[RunningSimulator]:
    with start(Sms254Simulator(username="tuma", api_key="KEY254", credits=100)) as running:
        yield running


@pytest.fixture
def saya() -> Iterator[RunningSimulator]:
    with start(SayaSmsSimulator(api_key=KEY, balance="100.00")) as running:
        yield running


class Receiver:
    """A webhook endpoint that records payloads and fails the first `fail_first` calls with 500."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.fail_first = 0
        self._calls = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver._calls += 1
                    failing = receiver._calls <= receiver.fail_first
                    if not failing:
                        receiver.payloads.append(body)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/sayasms?token=t"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """Poll fetch() until done(value) holds; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {value!r}")
        time.sleep(0.01)


def recorded(http: requests.Session, sim: RunningSimulator) -> list[dict[str, Any]]:
    return http.get(f"{sim.url}/_sim/requests").json()["requests"]


def callback_log(http: requests.Session, sim: RunningSimulator) -> list[dict[str, Any]]:
    return http.get(f"{sim.url}/_sim/callbacks/log").json()["callbacks"]


def set_faults(http: requests.Session, sim: RunningSimulator, spec: dict[str, Any]) -> None:
    assert http.post(f"{sim.url}/_sim/faults", json=spec).status_code == 200


def set_callbacks(http: requests.Session, sim: RunningSimulator, spec: dict[str, Any]) -> None:
    assert http.post(f"{sim.url}/_sim/callbacks", json=spec).status_code == 200


# ---------------------------------------------------------------- 254sms


def send254(http: requests.Session, sim: RunningSimulator, **fields: Any) -> requests.Response:
    body = {"username": "tuma", "api_key": "KEY254", "sender_id": "TUMA", "phone": "254712345678",
            "message": "Hello world"} | fields
    return http.post(f"{sim.url}/sendsms", json={k: v for k, v in body.items() if v is not None})


def test_254sms_send_answers_the_documented_shape_and_charges_credits(http, sms254):
    response = send254(http, sms254, phone="254712345678,254110000001")

    assert response.status_code == 200
    assert response.json() == {
        "recipientsCount": 2,
        "statusMessage": "Success",
        "statusCode": 101,
        "Balance": 98,
        "messageDetails": [
            {"recipient": "254712345678", "message": "Hello world", "statusCode": "Successfully Sent",
             "statusMessage": 2},
            {"recipient": "254110000001", "message": "Hello world", "statusCode": "Successfully Sent",
             "statusMessage": 2},
        ],
    }
    assert list(response.json()) == ["recipientsCount", "statusMessage", "statusCode", "Balance", "messageDetails"]
    credits = http.post(f"{sms254.url}/credits", json={"username": "tuma", "api_key": "KEY254"})
    assert credits.json() == {"credits": "98", "statusCode": 101}


@pytest.mark.parametrize(("length", "cost"), [(160, 1), (161, 2), (306, 2), (307, 3)])
def test_254sms_charges_one_credit_per_recipient_per_segment(http, sms254, length, cost):
    response = send254(http, sms254, message="a" * length, sender_id=None)
    assert response.json()["Balance"] == 100 - cost


def test_254sms_invalid_numbers_are_reported_free_and_not_counted(http, sms254):
    body = send254(http, sms254, phone="25472256565, 254712345678,+254712345678").json()

    assert body["recipientsCount"] == 1
    assert body["Balance"] == 99
    assert [(d["recipient"], d["statusCode"], d["statusMessage"]) for d in body["messageDetails"]] == [
        ("25472256565", "Invalid Phone Number", 0),
        ("254712345678", "Successfully Sent", 2),
        ("+254712345678", "Invalid Phone Number", 0),
    ]


def test_254sms_with_no_valid_number_still_answers_success_with_zero_recipients(http, sms254):
    body = send254(http, sms254, phone="0712345678").json()
    assert (body["statusCode"], body["recipientsCount"], body["Balance"]) == (101, 0, 100)


def test_254sms_recipients_beyond_the_credits_are_not_sent(http):
    with start(Sms254Simulator("tuma", "KEY254", credits=1)) as sim:
        body = send254(http, sim, phone="254712345678,254712345679").json()
    assert (body["recipientsCount"], body["Balance"]) == (1, 0)
    assert body["messageDetails"][1]["statusCode"] == "Insufficient Credits"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"username": None}, "X000"),
        ({"api_key": ""}, "X000"),
        ({"phone": None}, "X000"),
        ({"message": "   "}, "X000"),
        ({"phone": 254712345678}, "X000"),
        ({"api_key": "wrong"}, "X001"),
        ({"username": "someone"}, "X003"),
        ({"username": "someone", "api_key": "wrong"}, "X001"),
    ],
)
def test_254sms_send_errors_carry_the_documented_code_and_meaning(http, sms254, fields, code):
    response = send254(http, sms254, **fields)
    assert response.status_code == 200
    assert response.json() == {"statusCode": code, "statusMessage": ERRORS[code]}


@pytest.mark.parametrize(
    ("body", "code"),
    [({"username": "tuma"}, "X000"), ({"username": "tuma", "api_key": "x"}, "X001"),
     ({"username": "x", "api_key": "KEY254"}, "X003")],
)
def test_254sms_credits_errors(http, sms254, body, code):
    assert http.post(f"{sms254.url}/credits", json=body).json()["statusCode"] == code


def test_254sms_a_body_that_is_not_json_is_missing_parameters(http, sms254):
    response = http.post(f"{sms254.url}/sendsms", data="username=tuma&api_key=KEY254")
    assert response.json()["statusCode"] == "X000"


def test_254sms_error_fault_answers_the_provider_error_then_recovers(http, sms254):
    set_faults(http, sms254, {"error": "X002", "count": 1})

    first, second = send254(http, sms254), send254(http, sms254)

    assert (first.status_code, first.json()) == (200, {"statusCode": "X002", "statusMessage": ERRORS["X002"]})
    assert second.json()["statusCode"] == 101
    assert [r.get("fault") for r in recorded(http, sms254)] == ["error:X002", None]


def test_254sms_error_fault_must_be_a_known_code(http, sms254):
    assert http.post(f"{sms254.url}/_sim/faults", json={"error": "X999"}).status_code == 400


# ---------------------------------------------------------------- SayaSMS


def send_saya(http: requests.Session, sim: RunningSimulator, **fields: Any) -> requests.Response:
    body = {"to": ["+254712345678", "+254733111222"], "from": "SAYARADIUS",
            "body": "Hello! Your verification code is 834921."} | fields
    return http.post(f"{sim.url}/v1/messages", headers=AUTH, json={k: v for k, v in body.items() if v is not None})


def test_sayasms_send_answers_the_documented_shape(http, saya):
    response = send_saya(http, saya)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["status", "message_id", "recipients", "total_cost", "created_at"]
    assert re.fullmatch(f"msg_{ULID}", body["message_id"])
    assert body["recipients"] == [
        {"number": "+254712345678", "status": "queued", "cost": "KES 0.90", "message_id": f"{body['message_id']}_1"},
        {"number": "+254733111222", "status": "queued", "cost": "KES 0.90", "message_id": f"{body['message_id']}_2"},
    ]
    assert (body["status"], body["total_cost"]) == ("queued", "KES 1.80")
    assert ISO_MS.match(body["created_at"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk_test_wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}],
)
def test_sayasms_without_the_right_bearer_key_is_401(http, saya, headers):
    for method, path in [("POST", "/v1/messages"), ("GET", "/v1/account/balance")]:
        response = http.request(method, f"{saya.url}{path}", headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"to": None}, "to"),
        ({"to": []}, "to"),
        ({"to": "+254712345678"}, "to"),
        ({"to": ["+254712345678", "0712345678"]}, "to[1]"),
        ({"to": ["+0712345678"]}, "to[0]"),
        ({"from": None}, "from"),
        ({"from": "TWELVECHARSX"}, "from"),
        ({"from": "1234567890123456"}, "from"),
        ({"from": "MY SHOP"}, "from"),
        ({"body": ""}, "body"),
        ({"body": "x" * 919}, "body"),
        ({"callback_url": "ftp://x"}, "callback_url"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
    ],
)
def test_sayasms_bad_send_is_400_naming_the_field(http, saya, fields, named):
    response = send_saya(http, saya, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(named + " ")


def test_sayasms_accepts_the_documented_limits(http, saya):
    response = send_saya(http, saya, to=["+254712345678"], **{"from": "123456789012345"}, body="x" * 918,
                         scheduled_at="2026-03-13T14:30:00Z")
    assert response.status_code == 200
    assert response.json()["total_cost"] == "KES 5.40"  # 918 GSM-7 characters are 6 parts of 153


@pytest.mark.parametrize(
    ("body", "parts"),
    [("a" * 160, 1), ("a" * 161, 2), ("€" * 80, 1), ("€" * 81, 2), ("ü" * 160, 1), ("ж" * 70, 1),
     ("ж" * 71, 2), ("a" * 132 + "😀", 2), ("a" * 133 + "😀", 3)],
)
def test_sayasms_segments(body, parts):
    assert segments(body) == parts


def test_sayasms_non_gsm_text_is_priced_as_ucs2(http, saya):
    response = send_saya(http, saya, to=["+254712345678"], body="Habari 😀 " + "x" * 62)
    assert response.json()["total_cost"] == "KES 1.80"


def test_sayasms_balance_shape_and_insufficient_balance(http):
    with start(SayaSmsSimulator(api_key=KEY, balance="2.00")) as sim:
        assert send_saya(http, sim).status_code == 200
        refused = send_saya(http, sim, to=["+254712345678"])
        balance = http.get(f"{sim.url}/v1/account/balance", headers=AUTH).json()

    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "insufficient_balance"
    assert list(balance) == ["balance", "currency", "sms_credits", "account_id", "updated_at"]
    assert balance["balance"] == pytest.approx(0.20)
    assert (balance["currency"], balance["sms_credits"]) == ("KES", 0)
    assert re.fullmatch(f"acc_{ULID}", balance["account_id"])
    assert ISO_MS.match(balance["updated_at"])


def test_sayasms_balance_of_a_fresh_account(http, saya):
    balance = http.get(f"{saya.url}/v1/account/balance", headers=AUTH).json()
    assert (balance["balance"], balance["sms_credits"]) == (100, 111)


def test_sayasms_bulk_answers_one_id_per_message(http, saya):
    response = http.post(f"{saya.url}/v1/messages/bulk", headers=AUTH, json={
        "from": "MYSHOP",
        "messages": [{"to": "+254712345678", "body": "Hi Grace, your order #KE2041 is ready!"},
                     {"to": "+254722111222", "body": "Hi Peter " + "x" * 200}],
    })

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["status", "batch_id", "messages", "total_cost", "created_at"]
    assert re.fullmatch(f"bat_{ULID}", body["batch_id"])
    assert [(m["to"], m["status"], m["cost"]) for m in body["messages"]] == [
        ("+254712345678", "queued", "KES 0.90"), ("+254722111222", "queued", "KES 1.80")]
    assert all(re.fullmatch(f"msg_{ULID}", m["message_id"]) for m in body["messages"])
    assert body["total_cost"] == "KES 2.70"
    stored = http.get(f"{saya.url}/_sim/messages").json()["messages"]
    assert [(m["message_id"], m["parent_id"], m["from"]) for m in stored] == [
        (m["message_id"], body["batch_id"], "MYSHOP") for m in body["messages"]]


@pytest.mark.parametrize(
    ("messages", "named"),
    [([], "messages"), ([{"to": "+254712345678", "body": "ok"}, {"to": "0712", "body": "x"}], "messages[1].to"),
     ([{"to": "+254712345678", "body": ""}], "messages[0].body"), (["x"], "messages[0]")],
)
def test_sayasms_bad_bulk_is_400_naming_the_entry(http, saya, messages, named):
    response = http.post(f"{saya.url}/v1/messages/bulk", headers=AUTH, json={"from": "MYSHOP", "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(named + " ")


def test_sayasms_remembers_sent_messages(http, saya):
    set_callbacks(http, saya, {"enabled": False})
    sent = send_saya(http, saya, callback_url="http://127.0.0.1:9/cb").json()
    messages = http.get(f"{saya.url}/_sim/messages").json()["messages"]

    assert [(m["message_id"], m["to"], m["body"], m["callback_url"]) for m in messages] == [
        (r["message_id"], r["number"], "Hello! Your verification code is 834921.", "http://127.0.0.1:9/cb")
        for r in sent["recipients"]]
    assert http.delete(f"{saya.url}/_sim/messages").json() == {"messages": []}


@pytest.mark.parametrize(("error", "status"), [("unauthorized", 401), ("invalid_request", 400),
                                               ("insufficient_balance", 402), ("rate_limited", 429)])
def test_sayasms_error_fault_maps_to_its_status(http, saya, error, status):
    set_faults(http, saya, {"error": error, "count": 1})
    response = send_saya(http, saya)
    assert (response.status_code, response.json()["error"]["code"]) == (status, error)
    assert send_saya(http, saya).status_code == 200


@pytest.mark.parametrize(
    ("number", "name"),
    [("+254712345678", "Safaricom"), ("+254702345678", "Safaricom"), ("+254722345678", "Safaricom"),
     ("+254742345678", "Safaricom"), ("+254112345678", "Safaricom"), ("+254733345678", "Airtel"),
     ("+254102345678", "Airtel"), ("+254772345678", "Telkom"), ("+254762345678", "Unknown"),
     ("+14155550100", "Unknown")],
)
def test_sayasms_network_from_prefix(number, name):
    assert network(number) == name


# ---------------------------------------------------------------- recording and faults (common)


def test_requests_are_recorded_and_cleared_and_control_routes_are_not(http, saya):
    send_saya(http, saya, to=["+254712345678"])
    http.get(f"{saya.url}/_sim/faults")

    [entry] = recorded(http, saya)
    assert (entry["method"], entry["path"]) == ("POST", "/v1/messages")
    assert entry["headers"]["Authorization"] == f"Bearer {KEY}"
    assert entry["body"]["to"] == ["+254712345678"]
    assert ISO_MS.match(entry["received_at"]) and "fault" not in entry
    assert http.delete(f"{saya.url}/_sim/requests").json() == {"requests": []}
    assert recorded(http, saya) == []


def test_raw_text_bodies_are_recorded_as_text(http, sms254):
    http.post(f"{sms254.url}/sendsms", data="not json")
    assert recorded(http, sms254)[0]["body"] == "not json"


def test_status_fault_answers_count_calls_then_clears_itself(http, saya):
    set_faults(http, saya, {"status": 503, "count": 2})
    assert http.get(f"{saya.url}/_sim/faults").json() == {"faults": {"status": 503, "count": 2}}

    statuses = [send_saya(http, saya).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [r.get("fault") for r in recorded(http, saya)] == ["status:503", "status:503", None]
    assert http.get(f"{saya.url}/_sim/faults").json() == {"faults": {}}


def test_status_fault_without_count_lasts_until_cleared(http, sms254):
    set_faults(http, sms254, {"status": 500})
    first = send254(http, sms254)
    assert (first.status_code, first.json()["error"]["code"]) == (500, "simulated_fault")
    assert send254(http, sms254).status_code == 500
    set_faults(http, sms254, {})
    assert send254(http, sms254).status_code == 200


def test_latency_fault_delays_every_call(http, sms254):
    set_faults(http, sms254, {"latency_ms": 150})
    for _ in range(2):
        began = time.monotonic()
        assert send254(http, sms254).json()["statusCode"] == 101
        assert time.monotonic() - began >= 0.15
    assert [r["fault"] for r in recorded(http, sms254)] == ["latency_ms:150"] * 2


def test_faults_combine(http, saya):
    set_faults(http, saya, {"latency_ms": 100, "error": "rate_limited", "status": 503, "count": 1})
    began = time.monotonic()
    response = send_saya(http, saya)
    assert time.monotonic() - began >= 0.1
    assert (response.status_code, response.json()["error"]["code"]) == (503, "rate_limited")
    assert recorded(http, saya)[0]["fault"] == "latency_ms:100+error:rate_limited+status:503"


def test_hang_fault_times_the_client_out_then_serves_again(http, sms254):
    set_faults(http, sms254, {"hang": True, "count": 1})

    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(f"{sms254.url}/credits", json={}, timeout=0.3)

    assert send254(http, sms254).json()["statusCode"] == 101
    assert [r.get("fault") for r in recorded(http, sms254)] == ["hang", None]


def test_clearing_faults_releases_a_hanging_call_without_an_answer(http, sms254):
    set_faults(http, sms254, {"hang": True})
    outcome: list[BaseException] = []

    def call() -> None:
        with requests.Session() as own:
            own.trust_env = False
            try:
                send254(own, sms254)
            except requests.exceptions.ConnectionError as exc:
                outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: recorded(http, sms254), lambda entries: len(entries) == 1)
    set_faults(http, sms254, {})
    caller.join(timeout=5)

    assert not caller.is_alive() and len(outcome) == 1


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_drop_and_reset_close_the_connection_without_an_answer(http, saya, kind):
    set_faults(http, saya, {kind: True, "count": 1})

    with pytest.raises(requests.exceptions.ConnectionError):
        send_saya(http, saya)

    assert send_saya(http, saya).status_code == 200
    assert [r.get("fault") for r in recorded(http, saya)] == [kind, None]


@pytest.mark.parametrize(
    "spec", [{"status": 99}, {"count": 0, "status": 500}, {"latency_ms": -1}, {"hang": 1}, {"boom": True}, []],
)
def test_bad_fault_specs_are_400(http, saya, spec):
    assert http.post(f"{saya.url}/_sim/faults", json=spec).status_code == 400


# ---------------------------------------------------------------- SayaSMS delivery reports


def events(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["payload"]["event"], e["payload"]["to"]) for e in log]


def delivered_log(http: requests.Session, sim: RunningSimulator, count: int) -> list[dict[str, Any]]:
    """The callback log once `count` attempts were answered 200."""
    return wait_for(lambda: callback_log(http, sim),
                    lambda log: sum(e.get("response_status") == 200 for e in log) >= count)


def test_callbacks_report_queued_sent_then_delivered_per_recipient(http, saya, receiver):
    set_callbacks(http, saya, {"delay_ms": 1})
    sent = send_saya(http, saya, callback_url=receiver.url).json()

    log = delivered_log(http, saya, 6)

    assert events(log) == [(f"message.{stage}", number) for stage in ("queued", "sent", "delivered")
                           for number in ("+254712345678", "+254733111222")]
    assert {e["url"] for e in log} == {receiver.url}
    assert {e["attempt"] for e in log} == {1}
    first, second = sent["recipients"]
    assert log[0]["payload"] == {"event": "message.queued", "message_id": first["message_id"],
                                 "to": "+254712345678", "status": "queued"}
    assert log[2]["payload"] == {"event": "message.sent", "message_id": first["message_id"],
                                 "to": "+254712345678", "status": "sent"}
    delivered = log[5]["payload"]
    assert list(delivered) == ["event", "message_id", "to", "status", "network", "delivery_time", "latency_ms"]
    assert (delivered["message_id"], delivered["status"], delivered["network"]) == (
        second["message_id"], "delivered", "Airtel")
    assert ISO_MS.match(delivered["delivery_time"]) and delivered["latency_ms"] >= 0
    assert receiver.payloads == [e["payload"] for e in log]


def test_callbacks_report_failure_for_fail_numbers(http, saya, receiver):
    set_callbacks(http, saya, {"delay_ms": 1, "fail_numbers": ["+254733111222"], "fail_reason": "absent subscriber"})
    send_saya(http, saya, callback_url=receiver.url)

    finals = [e["payload"] for e in delivered_log(http, saya, 6)[4:]]

    assert finals[0]["event"] == "message.delivered"
    assert {k: v for k, v in finals[1].items() if k != "message_id"} == {
        "event": "message.failed", "to": "+254733111222", "status": "failed", "reason": "absent subscriber"}


def test_callbacks_can_be_duplicated(http, saya, receiver):
    set_callbacks(http, saya, {"delay_ms": 1, "duplicate": True})
    send_saya(http, saya, to=["+254712345678"], callback_url=receiver.url)

    log = delivered_log(http, saya, 6)

    assert [e[0] for e in events(log)] == ["message.queued"] * 2 + ["message.sent"] * 2 + ["message.delivered"] * 2
    assert log[0]["payload"] == log[1]["payload"]


def test_callbacks_can_arrive_in_reverse_order(http, saya, receiver):
    set_callbacks(http, saya, {"delay_ms": 1, "reorder": True})
    send_saya(http, saya, to=["+254712345678"], callback_url=receiver.url)

    log = delivered_log(http, saya, 3)

    assert [e[0] for e in events(log)] == ["message.delivered", "message.sent", "message.queued"]


def test_early_callbacks_arrive_before_the_send_is_answered(http, saya, receiver):
    set_callbacks(http, saya, {"delay_ms": 1, "early": True})

    sent = send_saya(http, saya, to=["+254712345678"], callback_url=receiver.url).json()

    assert [p["event"] for p in receiver.payloads] == ["message.queued", "message.sent", "message.delivered"]
    assert {p["message_id"] for p in receiver.payloads} == {sent["recipients"][0]["message_id"]}


def test_callbacks_retry_with_backoff_until_answered_200(http, saya, receiver):
    receiver.fail_first = 2
    set_callbacks(http, saya, {"delay_ms": 1, "backoff_ms": 20})
    send_saya(http, saya, to=["+254712345678"], callback_url=receiver.url)

    log = delivered_log(http, saya, 3)

    assert [(e["payload"]["event"], e["attempt"], e["response_status"]) for e in log] == [
        ("message.queued", 1, 500), ("message.queued", 2, 500), ("message.queued", 3, 200),
        ("message.sent", 1, 200), ("message.delivered", 1, 200)]


def test_callbacks_give_up_after_three_retries(http, saya):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    set_callbacks(http, saya, {"delay_ms": 1, "backoff_ms": 1, "early": True})
    send_saya(http, saya, to=["+254712345678"], callback_url=f"http://127.0.0.1:{closed_port}/hook")

    log = callback_log(http, saya)

    assert [(e["payload"]["event"], e["attempt"]) for e in log] == [
        (event, attempt)
        for event in ("message.queued", "message.sent", "message.delivered")
        for attempt in range(1, 5)]
    assert all("error" in e for e in log)


def test_callbacks_go_to_the_default_url_and_bulk_ids(http, receiver):
    with start(SayaSmsSimulator(api_key=KEY, callback_url=receiver.url)) as sim:
        set_callbacks(http, sim, {"delay_ms": 1, "early": True})
        sent = http.post(f"{sim.url}/v1/messages/bulk", headers=AUTH, json={
            "from": "MYSHOP", "messages": [{"to": "+254712345678", "body": "Hi Grace"}]}).json()
        assert http.get(f"{sim.url}/_sim/callbacks").json()["callbacks"]["default_url"] == receiver.url

    assert [p["message_id"] for p in receiver.payloads] == [sent["messages"][0]["message_id"]] * 3


def test_callbacks_can_be_turned_off_and_reset(http, saya, receiver):
    set_callbacks(http, saya, {"enabled": False, "early": True})
    send_saya(http, saya, callback_url=receiver.url)
    assert callback_log(http, saya) == []

    set_callbacks(http, saya, {})
    assert http.get(f"{saya.url}/_sim/callbacks").json()["callbacks"] == {
        "enabled": True, "delay_ms": 20, "fail_numbers": [], "fail_reason": "absent subscriber", "duplicate": False,
        "reorder": False, "early": False, "backoff_ms": 200, "default_url": None, "seed": None, "concurrency": None}


def test_callbacks_never_leave_loopback(http, saya):
    set_callbacks(http, saya, {"early": True, "delay_ms": 1})
    send_saya(http, saya, to=["+254712345678"], callback_url="http://example.com/hook")

    log = callback_log(http, saya)

    assert len(log) == 3 and all(e["error"].startswith("refused") and e["attempt"] == 1 for e in log)


@pytest.mark.parametrize(
    "spec", [{"delay_ms": "1"}, {"fail_numbers": "+254712345678"}, {"fail_numbers": [1]}, {"nope": 1}, {"backoff_ms": -1}],
)
def test_bad_callback_settings_are_400(http, saya, spec):
    assert http.post(f"{saya.url}/_sim/callbacks", json=spec).status_code == 400


def test_callback_log_can_be_cleared(http, saya):
    set_callbacks(http, saya, {"early": True, "delay_ms": 1})
    send_saya(http, saya, to=["+254712345678"], callback_url="http://example.com/hook")
    assert http.delete(f"{saya.url}/_sim/callbacks/log").json() == {"callbacks": []}
    assert callback_log(http, saya) == []


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("module", "args", "env"),
    [
        ("local.simulators.sms254", ["--username", "tuma", "--api-key", "K"], {}),
        ("local.simulators.sayasms", [], {"SIM_SAYASMS_API_KEY": "sk_test_env"}),
    ],
)
def test_command_line_announces_its_url_and_stops_on_sigterm(http, module, args, env):
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=REPO, env=os.environ | env, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+\n", line)
        url = line.split()[-1]
        assert http.get(f"{url}/_sim/requests").json() == {"requests": []}
        if env:
            balance = http.get(f"{url}/v1/account/balance", headers={"Authorization": "Bearer sk_test_env"})
            assert balance.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.stdout.close()


def test_command_line_requires_credentials():
    result = subprocess.run(
        [sys.executable, "-m", "local.simulators.sayasms"], cwd=REPO, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k != "SIM_SAYASMS_API_KEY"}, timeout=10,
    )
    assert result.returncode == 2 and "--api-key" in result.stderr
