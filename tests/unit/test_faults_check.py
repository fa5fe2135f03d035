"""The fault suite's checker (bench/faults.py) on small fabricated runs: how an `unknown` recipient is
traced. The one kind that needs evidence is a message a killed sender named in its intent write and
never sent (the takeover's reason DIED_MID_CALL, no provider call): it is traced only when one of
the suite's kills fell between the dead attempt's start and the takeover's `unknown`."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import faults  # noqa: E402  (the fault suite: its checks are pure functions of what it collected)
from tuma.domain.sending import DIED_MID_CALL  # noqa: E402
from tuma.domain.times import iso_millis  # noqa: E402

T0 = datetime(2026, 12, 3, 7, 56, 0, tzinfo=timezone.utc)  # when the message was accepted
DIED_AT = 70.0  # seconds after T0: the takeover records the dead attempt's message `unknown`
KEY = "711000001"
MESSAGE = "msg_01M8XEF87QF0TZWB85M0AX4Q43_1"


def at(seconds: float) -> str:
    """A time as Tuma writes it (tuma.domain.times.iso_millis), `seconds` after T0."""
    return iso_millis(T0 + timedelta(seconds=seconds))


def epoch(seconds: float) -> float:
    """The same moment as the suite's clock reads it (time.time())."""
    return (T0 + timedelta(seconds=seconds)).timestamp()


def orphan_view(reason: str = DIED_MID_CALL, sending_at: float | None = None) -> dict:
    """GET's view of a message the takeover recorded `unknown`: accepted at T0, its `unknown` at
    DIED_AT; with a `sending` entry at `sending_at` when given (an orphan has none today)."""
    history = [{"status": "queued", "at": at(0)}]
    if sending_at is not None:
        history.append({"status": "sending", "at": at(sending_at), "provider": "254sms"})
    history.append({"status": "unknown", "at": at(DIED_AT), "provider": "254sms", "reason": reason})
    return {"message_id": MESSAGE, "status": "unknown", "provider": "254sms", "reason": reason, "history": history}


def kill(seconds: float) -> dict:
    return {"pid": 4242, "at": "07:56:10", "at_epoch": round(epoch(seconds), 3), "jobs_in_flight": 3}


def sayasms_call(status: int, fault: str | None = None) -> dict:
    """A recorded SayaSMS call carrying the message's number, answered `status`."""
    return {"path": "/v1/messages", "body": {"to": [f"+254{KEY}"], "body": "hi"}, "status": status,
            "response": {}, "received_at": at(30), "fault": fault}


def checked(view: dict, kills: list[dict], calls: list[dict] = ()) -> dict:
    """check() on a run of one accepted recipient."""
    run = faults.Run(faults.Scenario())
    run.accepted = [faults.Accepted(MESSAGE, KEY, "single", "254sms")]
    run.kills = kills
    result = faults.check(run, {MESSAGE: view}, {"254sms": [], "sayasms": list(calls)}, [])
    return {"counts": result["counts"], "untraced": result["failures"]["unknown_untraced"],
            "traced": result.get("traced", {}).get("unknown_killed_before_call", [])}


def test_a_kill_inside_the_dead_attempts_window_traces_it():
    result = checked(orphan_view(), [kill(10)])
    assert result["counts"]["unknown_killed_before_call"] == 1
    assert result["counts"]["unknown_untraced"] == 0 and result["untraced"] == []
    assert MESSAGE in result["traced"][0] and "pid 4242" in result["traced"][0]


@pytest.mark.parametrize("seconds", [-5, DIED_AT + 5, DIED_AT + 600], ids=["before", "after", "much-after"])
def test_a_kill_outside_the_window_leaves_it_untraced(seconds):
    result = checked(orphan_view(), [kill(seconds)])
    assert result["counts"]["unknown_untraced"] == 1 and result["counts"]["unknown_killed_before_call"] == 0
    assert "no provider call" in result["untraced"][0] and "dead attempt within" in result["untraced"][0]


def test_no_kill_at_all_leaves_it_untraced():
    # A sender that timed out or crashed between its intent and its request: no evidence of a kill.
    assert checked(orphan_view(), [])["counts"]["unknown_untraced"] == 1


def test_a_kill_recorded_without_its_epoch_time_is_no_evidence():
    # The records of earlier runs (bench/faults.json before this checker) carry only "%H:%M:%S".
    old = {"pid": 4242, "at": "07:56:10", "jobs_in_flight": 3}
    assert checked(orphan_view(), [old])["counts"]["unknown_untraced"] == 1


def test_a_kill_just_past_the_window_counts_within_the_clock_margin():
    # One clock, but history times are cut to the millisecond and the kill's is read after os.kill.
    assert checked(orphan_view(), [kill(DIED_AT + 0.5)])["counts"]["unknown_killed_before_call"] == 1
    assert checked(orphan_view(), [kill(-0.5)])["counts"]["unknown_killed_before_call"] == 1
    assert checked(orphan_view(), [kill(DIED_AT + faults.KILL_MARGIN_S + 0.5)])["counts"]["unknown_untraced"] == 1


def test_a_sending_entry_starts_the_window_at_the_attempt():
    # Where GET shows when the attempt began, a kill before it cannot have been its death.
    assert checked(orphan_view(sending_at=30), [kill(10)])["counts"]["unknown_untraced"] == 1
    assert checked(orphan_view(sending_at=30), [kill(40)])["counts"]["unknown_killed_before_call"] == 1


def test_another_reason_needs_a_provider_call_whatever_the_kills():
    # Only the takeover's reason says the message was named and left unrecorded by a dead attempt.
    view = orphan_view(reason="connection closed before an answer")
    assert checked(view, [kill(10)])["counts"]["unknown_untraced"] == 1


def test_a_call_seen_is_an_answer_unrecorded_as_before():
    result = checked(orphan_view(), [], calls=[sayasms_call(503, "status:503")])
    assert result["counts"]["unknown_answer_unrecorded"] == 1
    assert result["counts"]["unknown_untraced"] == 0 and result["counts"]["unknown_killed_before_call"] == 0


def test_a_call_without_an_answer_is_no_answer_as_before():
    result = checked(orphan_view(reason="read timed out"), [kill(10)], calls=[sayasms_call(200, "hang")])
    assert result["counts"]["unknown_no_answer"] == 1 and result["counts"]["unknown_killed_before_call"] == 0


def test_the_window_is_read_from_the_takeovers_unknown():
    view = orphan_view()
    assert faults.dead_attempt_window(view) == (epoch(0), epoch(DIED_AT))
    late = {"status": "sent", "at": at(90), "note": "late: the message is already unknown; status unchanged"}
    assert faults.dead_attempt_window({**view, "history": view["history"] + [late]}) == (epoch(0), epoch(DIED_AT))
    assert faults.dead_attempt_window({**view, "history": view["history"][-1:]}) is None  # nothing before it


def result_of(**figures) -> dict:
    """A run's result as run_scenario returns it, every promise figure 0 unless given."""
    zero = dict.fromkeys(("lost", "duplicates", "regressions", "unknown_untraced", "unknown_no_answer",
                          "unknown_answer_unrecorded", "unknown_killed_before_call", "sent_without_provider_call",
                          "final_report_not_shown", "jobs_in_send_dlq"), 0)
    injected = {"faults": {}, "provider_calls": {"254sms": 1, "sayasms": 1}, "reports_sent": 0,
                "reports_duplicated": 0, "reports_reordered": 0}
    return {**zero, "accepted": 10, "injected": injected, "sender_kills": [kill(10)], "scenario": {"kills": 1},
            "idempotency": {}, "statuses": {"unknown": 10}, "settled": True, "still_waiting": 0,
            "reports_quiet": True, "submitted_seconds": 1.0, "total_seconds": 2.0, "failures": {}, "notes": [],
            **figures}


def test_unknowns_killed_before_their_call_do_not_fail_the_run_and_have_their_own_line():
    result = result_of(unknown_killed_before_call=10)
    assert not faults.failed(result)
    assert faults.failed(result_of(unknown_untraced=1))
    line = next(line for line in faults.table(result).splitlines() if line.startswith("unknown, killed before"))
    assert line.split()[-1] == "10"


def test_the_window_holds_the_attempt_in_what_get_shows_for_a_takeovers_orphan():
    # Built as the stack builds it: the takeover's item for a message the dead attempt named
    # (tuma.store.sending) and GET's view of it (tuma.domain.views). It has no `sending` entry, so
    # the window opens at the message's `queued`, before the dead attempt's claim.
    from tuma.domain.jobs import JobRecipient, SendJob
    from tuma.domain.records import Chunk
    from tuma.domain.sending import Claim, Outcome
    from tuma.domain.views import message_view
    from tuma.store.sending import _message_item

    request_id = MESSAGE.rsplit("_", 1)[0]
    recipient = JobRecipient(MESSAGE, f"+254{KEY}", "hi")
    job = SendJob("tenant", request_id, "254sms", "MYSHOP", None, (recipient,), from_api=True)
    takeover = Claim("claimed", token="t", orphaned=[recipient], taken_over=True, claimed_at=at(DIED_AT - 0.2))
    item = _message_item(job, takeover, recipient, Outcome("unknown", "254sms", reason=DIED_MID_CALL), at(DIED_AT), 0)
    request = {"request_id": request_id, "created_at": at(0), "provider": "254sms", "from": "MYSHOP"}
    view = message_view(request, Chunk(1, [f"+254{KEY}"], {}), item, MESSAGE)
    assert [entry["status"] for entry in view["history"]] == ["queued", "unknown"]
    assert faults.dead_attempt_window(view) == (epoch(0), epoch(DIED_AT))
    assert checked(view, [kill(DIED_AT - 40)])["counts"]["unknown_killed_before_call"] == 1
