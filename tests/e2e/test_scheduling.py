"""Scheduled sends on the deployed template: held by a one-time EventBridge Scheduler schedule
(MiniStack's scheduler fires it), sent after their time through either provider, and a cancelled
one never sent. The simulators' request records are the proof."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

from conftest import Client, Simulator

# The e2e stack sets SchedulerMinLeadSeconds=0, so even a few seconds ahead is a real schedule.
LEAD = timedelta(seconds=6)


def _at(moment: datetime) -> str:
    """A time as a Nairobi caller writes it: with its +03:00 offset."""
    return moment.astimezone(timezone(timedelta(hours=3))).isoformat(timespec="milliseconds")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _schedule(client: Client, body: str, scheduled_at: datetime, to=("0712345678",), **extra) -> dict:
    answer = client.post("/v1/messages", {"to": list(to), "from": "TUMA", "body": body,
                                          "scheduled_at": _at(scheduled_at), **extra})
    assert answer.status_code == 202, answer.text
    return answer.json()


def _records_with(sim: Simulator, path: str, field: str, body: str) -> list[dict]:
    return [r for r in sim.requests(path) if (r.get("body") or {}).get(field) == body]


def _schedule_of(stack, request_id: str) -> dict | None:
    """The request's one-time schedule in MiniStack's EventBridge Scheduler, or None."""
    scheduler = stack.client("scheduler")
    try:
        return scheduler.get_schedule(Name=request_id, GroupName=stack.outputs["ScheduleGroupName"])
    except scheduler.exceptions.ResourceNotFoundException:
        return None


def test_scheduled_sends_go_after_their_time_and_a_cancelled_one_never(stack, client, sayasms, sms254):
    tag = uuid.uuid4().hex[:8]
    first = datetime.now(UTC) + LEAD
    later = first + timedelta(seconds=2)  # the sends that prove the cancelled one's time has passed

    doomed = _schedule(client, f"cancelled {tag}", first)
    via_saya = _schedule(client, f"saya {tag}", later, to=("0712345678", "0722111222"))
    via_254 = _schedule(client, f"254 {tag}", later, provider="254sms")

    assert doomed["status"] == "scheduled"
    assert _moment(doomed["scheduled_at"]) == first.replace(microsecond=first.microsecond // 1000 * 1000)
    assert [r["status"] for r in via_254["recipients"]] == ["scheduled"]
    waiting = client.get(f"/v1/messages/{via_saya['recipients'][0]['message_id']}").json()
    assert waiting["status"] == "scheduled" and waiting["scheduled_at"] == via_saya["scheduled_at"]
    schedule = _schedule_of(stack, via_254["message_id"])  # held by the scheduler, not by the queue
    assert schedule["ScheduleExpression"] == f"at({later.strftime('%Y-%m-%dT%H:%M:%S')})"
    assert schedule["ActionAfterCompletion"] == "DELETE"

    cancelled = client.delete(f"/v1/messages/{doomed['message_id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["counts"] == {"cancelled": 1}
    assert _schedule_of(stack, doomed["message_id"]) is None  # deleted with the cancel
    one = client.delete(f"/v1/messages/{via_saya['message_id']}_2")  # one recipient of a request
    assert one.status_code == 200 and one.json()["status"] == "cancelled", one.text

    # Wait (with a deadline) for the sends scheduled after the cancelled one.
    deadline = time.monotonic() + 120
    views = {}
    while time.monotonic() < deadline:
        views = {name: client.get(f"/v1/messages/{answer['message_id']}_1").json()
                 for name, answer in (("saya", via_saya), ("254", via_254))}
        if all(v["status"] == "sent" for v in views.values()):
            break
        time.sleep(0.5)
    assert {name: v["status"] for name, v in views.items()} == {"saya": "sent", "254": "sent"}
    assert [h["status"] for h in views["saya"]["history"]] == ["scheduled", "queued", "sending", "sent"]

    (saya_call,) = _records_with(sayasms, "/v1/messages", "body", f"saya {tag}")
    assert saya_call["body"]["to"] == ["+254712345678"]  # its cancelled recipient left out
    assert client.get(f"/v1/messages/{via_saya['message_id']}").json()["counts"] == {"sent": 1, "cancelled": 1}
    (call_254,) = _records_with(sms254, "/sendsms", "message", f"254 {tag}")
    assert _moment(saya_call["received_at"]) >= _moment(via_saya["scheduled_at"])
    assert _moment(call_254["received_at"]) >= _moment(via_254["scheduled_at"])
    assert "scheduled_at" not in saya_call["body"]  # Tuma holds it: SayaSMS's own scheduling is not used
    assert _schedule_of(stack, via_saya["message_id"]) is None  # a fired schedule deletes itself

    # The cancelled one's time passed before the others' did, and nothing of it reached a provider.
    assert _records_with(sayasms, "/v1/messages", "body", f"cancelled {tag}") == []
    assert _records_with(sms254, "/sendsms", "message", f"cancelled {tag}") == []
    assert client.get(f"/v1/messages/{doomed['recipients'][0]['message_id']}").json()["status"] == "cancelled"

    again = client.delete(f"/v1/messages/{doomed['message_id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_cancelled"
    too_late = client.delete(f"/v1/messages/{via_saya['recipients'][0]['message_id']}")
    assert too_late.status_code == 409 and too_late.json()["error"]["code"] == "already_sent"
    unknown = client.delete(f"/v1/messages/msg_{'0' * 26}_1")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_scheduled_at_problems_are_400s_naming_the_field(client):
    naive = client.post("/v1/messages", {"to": ["0712345678"], "from": "TUMA", "body": "x",
                                         "scheduled_at": "2030-01-01T09:00:00"})
    past = client.post("/v1/messages/bulk", {"from": "TUMA", "messages": [{"to": "0712345678", "body": "x"}],
                                             "scheduled_at": "2020-01-01T09:00:00Z"})

    assert naive.status_code == 400 and "no UTC offset" in naive.json()["error"]["details"][0]["reason"]
    assert past.status_code == 400 and past.json()["error"]["details"][0]["field"] == "scheduled_at"
