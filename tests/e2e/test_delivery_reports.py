"""Delivery reports end to end: the SayaSMS simulator calls the deployed webhook, the status moves
forward only, reports that come early are kept, silent messages expire, and clients get signed
callbacks, retried until their endpoint answers 2xx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import E2E_PARAMETERS
from tuma.callback_http import BUDGET_S
from tuma.domain.callbacks import retry_delay, verify

EVENTS = ["message.queued", "message.sent", "message.delivered"]
# What a delivered message's history keeps of them: queued and sent change nothing (the message is
# `sent` already), so they are not written (issue 12: a report that changes nothing costs no write).
KEPT = ["message.delivered"]


def poll(what: Callable[[], object], done: Callable[[object], bool], seconds: float = 60, pause: float = 0.2):
    """`what()` until `done(value)` or the deadline; the last value either way."""
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(pause)


def events_in(view: dict) -> list[str]:
    return [entry["event"] for entry in view["history"] if "event" in entry]


def send(client, to: list[str], **extra) -> dict:
    answer = client.post("/v1/messages", {"to": to, "from": "TUMA", "body": "Habari", "provider": "sayasms", **extra})
    assert answer.status_code == 202, answer.text
    return answer.json()


def reports_done(sayasms, count: int) -> list[dict]:
    """The simulator's callback log once `count` reports were answered 200."""
    log = poll(sayasms.callback_log, lambda entries: sum(e.get("response_status") == 200 for e in entries) >= count)
    assert sum(e.get("response_status") == 200 for e in log) == count, log
    return log


def test_delivered_and_failed_after_the_simulators_callbacks(stack, client, sayasms):
    sayasms.callbacks(fail_numbers=["+254722111222"], fail_reason="absent subscriber")
    answer = send(client, ["0712345678", "0722111222"])
    first, second = (r["message_id"] for r in answer["recipients"])

    delivered = client.wait_for(first, done=lambda v: v["status"] == "delivered")
    failed = client.wait_for(second, done=lambda v: v["status"] == "failed")

    assert delivered["status"] == "delivered"
    assert delivered["network"] == "Safaricom"
    assert isinstance(delivered["latency_ms"], int) and delivered["delivery_time"].endswith("Z")
    assert failed["status"] == "failed" and failed["reason"] == "absent subscriber"
    assert [h["status"] for h in delivered["history"][:3]] == ["queued", "sending", "sent"]
    log = reports_done(sayasms, 6)
    assert events_in(delivered) == KEPT
    assert events_in(failed)[-1] == "message.failed"
    # SayaSMS was given the webhook with its token and the call's reference, and reported to that
    # URL as given (the query string survived); every report was answered 200 at once.
    (given,) = {r["body"]["callback_url"] for r in sayasms.requests("/v1/messages")}
    assert given.startswith(stack.webhook_url + "?token=") and "&ref=" in given
    assert {e["url"] for e in log} == {given}
    assert all(e["attempt"] == 1 for e in log)


def test_a_reordered_and_duplicated_stream_ends_delivered_with_a_clean_history(client, sayasms):
    sayasms.callbacks(reorder=True, duplicate=True)
    message_id = send(client, ["0712345678"])["recipients"][0]["message_id"]

    reports_done(sayasms, 6)  # delivered, sent, queued: each twice
    view = client.wait_for(message_id, done=lambda v: v["status"] == "delivered")

    assert view["status"] == "delivered"
    assert events_in(view) == KEPT, view["history"]  # once, duplicates and late reports not written
    assert [h["status"] for h in view["history"]] == ["queued", "sending", "sent", "delivered"]


def test_a_report_before_the_send_answer_is_applied_once_the_send_completes(client, sayasms):
    # The simulator reports every stage before it answers the send: Tuma does not know the id yet.
    sayasms.callbacks(early=True, delay_ms=1)
    message_id = send(client, ["0712345678"])["recipients"][0]["message_id"]

    view = client.wait_for(message_id, done=lambda v: v["status"] == "delivered")

    assert view["status"] == "delivered"
    assert events_in(view) == KEPT
    sent_at = next(h["at"] for h in view["history"] if h["status"] == "sent" and "event" not in h)
    # Received (and answered 200) before the sender recorded the send, applied after it.
    assert all(h["at"] < sent_at for h in view["history"] if "event" in h)
    assert view["history"][2]["status"] == "sent" and "event" not in view["history"][2]
    assert all(e["response_status"] == 200 for e in sayasms.callback_log())


def test_the_webhook_refuses_a_wrong_token_and_a_malformed_report(stack):
    report = {"event": "message.delivered", "message_id": "msg_01HX4ZQ9GKD2VP7C9XR3MNBVT4_1",
              "to": "+254712345678", "status": "delivered"}
    url = stack.webhook_url

    wrong = requests.post(url, params={"token": "not-the-token"}, json=report, timeout=30)
    missing = requests.post(url, json=report, timeout=30)
    malformed = requests.post(url, params={"token": stack.webhook_token}, json={"event": "message.lost"}, timeout=30)
    not_json = requests.post(url, params={"token": stack.webhook_token}, data="{", timeout=30,
                             headers={"Content-Type": "application/json"})
    started = time.monotonic()
    unknown = requests.post(url, params={"token": stack.webhook_token}, json=report, timeout=30)
    elapsed = time.monotonic() - started
    again = requests.post(url, params={"token": stack.webhook_token}, json=report, timeout=30)

    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_report"
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    # A report for an id Tuma does not know (yet) is kept and answered 200, well within SayaSMS's 10 s.
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "parked"
    assert again.status_code == 200
    assert elapsed < 2


def test_a_message_with_no_final_report_expires_and_a_late_report_still_wins(stack, client, sayasms):
    # Reports off: the message stays `sent`; the test stack's ExpireAfterSeconds is 3.
    message_id = send(client, ["0712345678"])["recipients"][0]["message_id"]
    view = client.wait_for(message_id, done=lambda v: v["status"] == "sent")
    assert view["status"] == "sent"
    lambda_client = stack.client("lambda")

    def expire_and_look() -> dict:
        lambda_client.invoke(FunctionName=stack.outputs["ExpirerFunctionName"], Payload=b"{}")
        return client.get(f"/v1/messages/{message_id}").json()

    view = poll(expire_and_look, lambda v: v["status"] == "expired", seconds=120, pause=0.5)

    assert view["status"] == "expired"
    assert view["history"][-1]["reason"] == "no final delivery report within 3 s"
    # A delivery report that comes after all still gives the true final status. SayaSMS posts it,
    # as every report, to the URL the send gave it (token and call reference).
    (given,) = {r["body"]["callback_url"] for r in sayasms.requests("/v1/messages")}
    late = requests.post(given, timeout=30, json={
        "event": "message.delivered", "message_id": view["provider_message_id"], "to": "+254712345678",
        "status": "delivered", "network": "Safaricom", "delivery_time": "2026-03-13T14:30:02.489Z",
        "latency_ms": 2489})
    assert late.status_code == 200
    assert client.get(f"/v1/messages/{message_id}").json()["status"] == "delivered"


class Receiver:
    """A client's callback endpoint on loopback: fails the first `failures` attempts of each
    change with HTTP 500, then answers 200; records every attempt."""

    def __init__(self, failures: int):
        self.failures = failures
        self.attempts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.lock:
                    event_id = self.headers.get("Tuma-Event-Id")
                    earlier = sum(1 for a in receiver.attempts if a["event_id"] == event_id)
                    status = 500 if earlier < receiver.failures else 200
                    receiver.attempts.append({"event_id": event_id, "body": body, "status": status,
                                              "signature": self.headers.get("Tuma-Signature"),
                                              "at": int(time.time()), "received": time.monotonic()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tuma"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def accepted(self) -> list[dict]:
        with self.lock:
            return [a for a in self.attempts if a["status"] == 200]

    def by_change(self) -> dict[str, list[dict]]:
        """Every attempt, grouped by change (Tuma-Event-Id), in arrival order."""
        with self.lock:
            grouped: dict[str, list[dict]] = {}
            for attempt in self.attempts:
                grouped.setdefault(attempt["event_id"], []).append(attempt)
            return grouped

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver(failures=2)
    yield server
    server.close()


# The deployed retry schedule (conftest's parameters): attempt n fails -> back after retry_delay(n).
BACKOFF_S, MAX_ATTEMPTS = int(E2E_PARAMETERS["CallbackBackoffSeconds"]), int(E2E_PARAMETERS["CallbackMaxAttempts"])
# A job still on the queue POSTs again at the latest one invocation (every POST of its batch runs
# at once, each at most BUDGET_S) plus its longest backoff later; twice that allows for a loaded machine.
QUIET_S = 2 * (BUDGET_S + retry_delay(MAX_ATTEMPTS - 1, BACKOFF_S))


def callback_jobs(stack, queue_url: str, of: str) -> list[dict]:
    """The callback jobs held by a queue, visible or in flight, of one message or one request (`of`
    is its message id or request id), each as its payload id and receive count. Read through
    MiniStack's peek endpoint, which moves nothing: the SQS API shows an in-flight message only by
    receiving it. Never a count of the whole queue: that counts other tests' jobs too, e.g. the
    `expired` callbacks of an earlier test's messages, which the expiry test's expirer run ends
    and which are retried for ~15 s against a receiver that is gone."""
    answer = requests.get(f"{stack.endpoint}/_ministack/sqs/messages", params={"QueueUrl": queue_url}, timeout=10)
    answer.raise_for_status()
    held = [m for regions in answer.json()["messages"].values() for queues in regions.values()
            for messages in queues.values() for m in messages]
    payloads = [(json.loads(m["Body"])["payload"], m["ReceiveCount"]) for m in held]
    return [{"id": payload["id"], "receive_count": count} for payload, count in payloads
            if of in (payload["message_id"], payload["request_id"])]


def assert_backed_off(attempts: list[dict]) -> None:
    """Attempt n+1 came no sooner than retry_delay(n) after attempt n (the visibility it set)."""
    for n, (earlier, later) in enumerate(zip(attempts, attempts[1:]), start=1):
        assert later["received"] - earlier["received"] >= retry_delay(n, BACKOFF_S), (n, attempts)


def test_a_client_gets_each_change_once_signed_after_failing_twice(stack, client, sayasms, receiver):
    sayasms.callbacks()
    message_id = send(client, ["0712345678"], callback_url=receiver.url)["recipients"][0]["message_id"]

    accepted = poll(receiver.accepted, seconds=60, pause=0.25,
                    done=lambda got: {json.loads(a["body"])["status"] for a in got} >= {"sent", "delivered"})

    statuses = [json.loads(a["body"])["status"] for a in accepted]
    assert sorted(statuses) == ["delivered", "sent"], receiver.attempts
    for attempt in accepted:
        assert verify(stack.signing_secret, attempt["signature"], attempt["body"], now=attempt["at"])
        assert not verify("whsec_wrong", attempt["signature"], attempt["body"], now=attempt["at"])
        payload = json.loads(attempt["body"])
        assert payload["message_id"] == message_id and attempt["event_id"] == payload["id"]
    delivered = json.loads(next(a["body"] for a in accepted if json.loads(a["body"])["status"] == "delivered"))
    assert delivered["network"] == "Safaricom" and delivered["previous_status"] in ("sent", "sending")

    # Nothing of this message is left to deliver: its jobs leave the queue once their 200 is in
    # (none retrying, none duplicated, none dead-lettered), so no third POST can come.
    left = poll(lambda: callback_jobs(stack, stack.outputs["CallbackQueueUrl"], message_id), lambda jobs: not jobs,
                seconds=QUIET_S)
    assert left == []
    assert callback_jobs(stack, stack.outputs["CallbackDeadLetterQueueUrl"], message_id) == []
    per_change = receiver.by_change()
    assert {change: [a["status"] for a in attempts] for change, attempts in per_change.items()} == {
        f"{message_id}:sent": [500, 500, 200], f"{message_id}:delivered": [500, 500, 200]}
    for attempts in per_change.values():
        assert_backed_off(attempts)
