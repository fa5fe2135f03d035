"""Two providers as one, on the deployed template: failover with a simulator down, the circuit
breaker opening and closing, and a provider's silence ending `unknown` with no second call.
The simulators' request records are the proof of what each provider received."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from conftest import E2E_PARAMETERS

COOLOFF = timedelta(seconds=int(E2E_PARAMETERS["CircuitCooloffSeconds"]))


def send(client, number: str, body: str) -> str:
    """One unpinned message; its message id."""
    answer = client.post("/v1/messages", {"to": [number], "from": "TUMA", "body": body})
    assert answer.status_code == 202, answer.text
    return answer.json()["recipients"][0]["message_id"]


def circuit(client, provider: str) -> dict:
    return client.get("/v1/account/balance").json()["providers"][provider]["circuit"]


def test_with_sayasms_down_a_message_is_sent_by_254sms_and_the_record_says_so(client, sms254, sayasms_down):
    message_id = send(client, "0712345678", "Failover please")

    view = client.wait_for(message_id)

    assert (view["status"], view["provider"], view["failover_from"]) == ("sent", "254sms", "sayasms")
    assert view["failover_reason"] == "sayasms: connection failed: refused"
    assert [(e["status"], e.get("provider")) for e in view["history"]][-3:] == [
        ("sending", "sayasms"), ("sending", "254sms"), ("sent", "254sms")]
    (call,) = sms254.requests("/sendsms")
    assert (call["body"]["phone"], call["body"]["message"]) == ("254712345678", "Failover please")


def test_the_circuit_opens_keeps_calls_away_and_a_probe_closes_it(stack, client, sayasms, sms254):
    sayasms.fault(status=503)  # every SayaSMS call fails, with its immediate retries
    for n in range(2):  # CircuitFailureThreshold
        view = client.wait_for(send(client, "0712345678", f"Before the circuit opens {n}"))
        assert (view["provider"], view["failover_reason"]) == ("254sms", "sayasms: HTTP 503")
    opened = circuit(client, "sayasms")
    assert opened["state"] == "open"
    calls_when_opened = len(sayasms.requests("/v1/messages"))
    assert calls_when_opened == 2 * 3

    sayasms.fault()  # SayaSMS is back, but the circuit keeps it out until the cool-off ends
    view = client.wait_for(send(client, "0712345678", "While the circuit is open"))
    assert (view["provider"], view["failover_reason"]) == ("254sms", "sayasms: circuit open")
    assert datetime.fromisoformat(view["updated_at"].replace("Z", "+00:00")) < \
        datetime.fromisoformat(opened["since"]) + COOLOFF, "sent after the cool-off: the test proves nothing"
    assert len(sayasms.requests("/v1/messages")) == calls_when_opened

    # After the cool-off, the next message is the probe: SayaSMS sends it and the circuit closes.
    reopen_at = datetime.fromisoformat(opened["since"]) + COOLOFF
    time.sleep(max(0.0, (reopen_at - datetime.now(reopen_at.tzinfo)).total_seconds()) + 0.5)
    view = client.wait_for(send(client, "0712345678", "The probe"))
    assert (view["status"], view["provider"]) == ("sent", "sayasms")
    assert "failover_from" not in view
    assert circuit(client, "sayasms")["state"] == "closed"
    assert sayasms.requests("/v1/messages")[-1]["body"]["body"] == "The probe"


def test_no_answer_ends_unknown_and_no_provider_is_called_again(client, sayasms, sms254):
    sayasms.fault(hang=True, count=1)  # SayaSMS takes the request and never answers

    view = client.wait_for(send(client, "0712345678", "Did it go?"), seconds=90)

    assert (view["status"], view["provider"], view["error_code"]) == ("unknown", "sayasms", "read_timeout")
    assert view["reason"] == "no answer within 5 s after the request was sent"
    # The job is closed: a later message goes out while this one is never sent again by either.
    assert client.wait_for(send(client, "0722111222", "After the silence"))["status"] == "sent"
    assert [c["body"]["body"] for c in sayasms.requests("/v1/messages")] == ["Did it go?", "After the silence"]
    assert sms254.requests("/sendsms") == []
