"""The rules of scheduled sends (tuma.domain.scheduling, tuma.domain.fields.scheduled_at): every
refusal of `scheduled_at`, on both routes, and the arithmetic of holding a request until its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tuma.domain import scheduling
from tuma.domain.bulk import accept_bulk, bulk_response
from tuma.domain.errors import ValidationFailed
from tuma.domain.messages import accept_send, send_response
from tuma.domain.scheduling import MAX_SCHEDULE_AHEAD
from tuma.domain.records import Chunk
from tuma.domain.views import batch_view, message_view

NOW = datetime(2026, 3, 13, 14, 30, 0, 250000, tzinfo=UTC)
OFFSET_EXAMPLE = "e.g. 2026-03-14T09:00:00+03:00"


def single(scheduled_at) -> dict:
    return {"to": ["0712345678"], "from": "TUMA", "body": "Habari", "scheduled_at": scheduled_at}


def bulk(scheduled_at) -> dict:
    return {"from": "TUMA", "messages": [{"to": "0712345678", "body": "Habari"}], "scheduled_at": scheduled_at}


ROUTES = [pytest.param(lambda p: accept_send(single(p), "t", NOW), id="single"),
          pytest.param(lambda p: accept_bulk(bulk(p), "t", NOW), id="bulk")]


def refusal(accept, value) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        accept(value)
    problem = raised.value
    assert problem.status == 400 and problem.code == "invalid_request"
    assert problem.message.startswith("`scheduled_at` ")  # the message names the field
    (detail,) = problem.details
    assert detail["field"] == "scheduled_at"
    return problem


# --- every refusal -----------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ROUTES)
@pytest.mark.parametrize("value", [1773412200, ["2026-03-14T09:00:00Z"], {"at": "now"}, True])
def test_a_scheduled_at_that_is_not_a_string_is_refused(accept, value):
    reason = refusal(accept, value).details[0]["reason"]
    assert reason == f"must be an ISO 8601 date and time as a string, {OFFSET_EXAMPLE}"


@pytest.mark.parametrize("accept", ROUTES)
@pytest.mark.parametrize("value", ["tomorrow at 9", "", "2026-13-01T09:00:00Z", "14/03/2026 09:00",
                                   "2026-03-14T25:00Z"])
def test_a_scheduled_at_that_is_not_iso_8601_is_refused(accept, value):
    assert refusal(accept, value).details[0]["reason"] == f"is not an ISO 8601 date and time, {OFFSET_EXAMPLE}"


@pytest.mark.parametrize("accept", ROUTES)
@pytest.mark.parametrize("value", ["2026-03-14T09:00:00", "2026-03-14T09:00", "2026-03-14"])
def test_a_time_without_an_offset_is_refused_as_ambiguous(accept, value):
    reason = refusal(accept, value).details[0]["reason"]
    assert reason.startswith("has no UTC offset, so the time is ambiguous: add Z for UTC or an offset such as +03:00")


@pytest.mark.parametrize("accept", ROUTES)
@pytest.mark.parametrize("value", ["2026-03-13T14:30:00.250Z", "2026-03-13T17:30:00.250+03:00",
                                   "2026-03-13T14:29:59Z", "2020-01-01T00:00:00Z"])
def test_a_time_that_is_not_in_the_future_is_refused(accept, value):
    reason = refusal(accept, value).details[0]["reason"]
    assert reason.startswith("must be in the future (it is ")
    assert reason.endswith("; now is 2026-03-13T14:30:00Z)")


@pytest.mark.parametrize("accept", ROUTES)
def test_a_time_past_the_30_day_horizon_is_refused_with_the_limit(accept):
    too_far = NOW + MAX_SCHEDULE_AHEAD + timedelta(milliseconds=1)
    reason = refusal(accept, too_far.isoformat()).details[0]["reason"]
    assert reason == ("is more than 30 days ahead (it is 2026-04-12T14:30:00Z); "
                      "the latest allowed now is 2026-04-12T14:30:00Z")


def test_the_scheduled_at_problem_is_listed_with_the_others():
    with pytest.raises(ValidationFailed) as raised:
        accept_send({"to": [], "from": "TUMA", "body": "x", "scheduled_at": "soon"}, "t", NOW)
    assert sorted(d["field"] for d in raised.value.details) == ["scheduled_at", "to"]


# --- what is accepted --------------------------------------------------------------------------


@pytest.mark.parametrize("value, stored", [
    ("2026-03-14T09:00:00+03:00", "2026-03-14T06:00:00.000Z"),  # Nairobi
    ("2026-03-14T06:00:00Z", "2026-03-14T06:00:00.000Z"),
    ("2026-03-14T06:00:00.123456+00:00", "2026-03-14T06:00:00.123Z"),
    ("2026-03-13T14:30:00.251Z", "2026-03-13T14:30:00.251Z"),  # a millisecond ahead is the future
    ("2026-04-12T14:30:00.250Z", "2026-04-12T14:30:00.250Z"),  # exactly at the horizon
    ("2026-03-14T01:00:00-05:00", "2026-03-14T06:00:00.000Z"),
])
def test_an_accepted_time_is_kept_in_utc_with_milliseconds(value, stored):
    assert accept_send(single(value), "t", NOW).scheduled_at == stored


def test_null_or_absent_scheduled_at_sends_now():
    assert accept_send(single(None), "t", NOW).scheduled_at is None
    response = send_response(accept_send({"to": ["0712345678"], "from": "TUMA", "body": "x"}, "t", NOW))
    assert response["status"] == "queued" and "scheduled_at" not in response


def test_a_scheduled_bulk_answers_scheduled_with_its_time():
    response = bulk_response(accept_bulk(bulk("2026-03-20T08:00:00+03:00"), "t", NOW))
    assert response["status"] == "scheduled"
    assert response["scheduled_at"] == "2026-03-20T05:00:00.000Z"


def test_the_job_format_is_unchanged_by_scheduling():
    plain = accept_send(single(None), "t", NOW).jobs()[0]
    scheduled = accept_send(single("2026-03-14T06:00:00Z"), "t", NOW).jobs()[0]
    assert set(plain) == set(scheduled) and "scheduled_at" not in scheduled


# --- holding until the time --------------------------------------------------------------------


def test_the_at_expression_is_utc_to_the_second_below():
    moment = datetime(2026, 3, 14, 6, 0, 0, 999000, tzinfo=UTC)
    assert scheduling.at_expression(moment) == "at(2026-03-14T06:00:00)"


@pytest.mark.parametrize("ahead, held", [(timedelta(seconds=59, milliseconds=999), False),
                                         (timedelta(seconds=60), True), (timedelta(days=30), True)])
def test_only_a_time_at_least_the_scheduler_precision_ahead_gets_a_schedule(ahead, held):
    assert scheduling.held_by_scheduler(NOW + ahead, NOW) is held
    assert scheduling.held_by_scheduler(NOW + ahead, NOW, timedelta(0)) is True


@pytest.mark.parametrize("ahead, delay", [
    (None, 0), (timedelta(seconds=-5), 0), (timedelta(0), 0), (timedelta(milliseconds=1), 1),
    (timedelta(seconds=59, milliseconds=1), 60), (timedelta(seconds=900), 900), (timedelta(hours=1), 900)])
def test_the_queue_delay_rounds_up_so_nothing_leaves_early(ahead, delay):
    assert scheduling.queue_delay_seconds(None if ahead is None else NOW + ahead, NOW) == delay


def test_job_members_are_the_sendable_positions_from_each_start_to_the_next():
    assert scheduling.job_members([1, 1001], 1500, {3, 1001, 1500}) == {
        1: [i for i in range(1, 1001) if i != 3], 1001: list(range(1002, 1500))}
    assert scheduling.job_of([1, 1001], 1000) == 1 and scheduling.job_of([1, 1001], 1001) == 1001
    assert scheduling.job_of([2], 1) is None


def test_the_schedule_name_fits_schedulers_rules():
    request_id = accept_send(single("2026-03-14T06:00:00Z"), "t", NOW).request_id
    name = scheduling.schedule_name(request_id)
    assert 1 <= len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)


# --- what the status routes show ---------------------------------------------------------------

REQUEST = {"request_id": "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C", "provider": "sayasms", "from": "TUMA",
           "created_at": "2026-03-13T14:30:00.250Z", "scheduled_at": "2026-03-14T06:00:00.000Z",
           "total": 2, "accepted": 1, "rejected": 1}
CHUNK = Chunk(start=1, numbers=["+254712345678", "0712"], rejected={"2": "number is not valid"})


def test_a_message_not_yet_released_is_scheduled():
    view = message_view(REQUEST, CHUNK, None, "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C_1")
    assert view["status"] == "scheduled" and view["scheduled_at"] == "2026-03-14T06:00:00.000Z"
    assert view["history"] == [{"status": "scheduled", "at": "2026-03-13T14:30:00.250Z"}]
    rejected = message_view(REQUEST, CHUNK, None, "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C_2")
    assert rejected["status"] == "rejected" and rejected["history"][0]["status"] == "rejected"


def test_a_released_message_is_queued_and_its_history_says_when():
    released = {**REQUEST, "released_at": "2026-03-14T06:00:03.000Z"}
    view = message_view(released, CHUNK, None, "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C_1")
    assert view["status"] == "queued"
    assert view["history"] == [{"status": "scheduled", "at": "2026-03-13T14:30:00.250Z"},
                               {"status": "queued", "at": "2026-03-14T06:00:03.000Z"}]


def test_a_cancelled_message_item_wins_over_the_derived_status():
    item = {"status": "cancelled", "updated_at": "2026-03-13T15:00:00.000Z",
            "history": [{"status": "cancelled", "at": "2026-03-13T15:00:00.000Z"}]}
    view = message_view(REQUEST, CHUNK, item, "msg_01JPB4N3W4Y1MV6DFGCWSZ2X6C_1")
    assert view["status"] == "cancelled"
    assert [h["status"] for h in view["history"]] == ["scheduled", "cancelled"]


def test_a_batch_counts_untouched_messages_as_scheduled_until_released():
    batch = {**REQUEST, "total": 3, "accepted": 3, "rejected": 0}
    waiting = batch_view(batch, ["cancelled"], "bat_01JPB4N3W4Y1MV6DFGCWSZ2X6C")
    assert waiting["counts"] == {"cancelled": 1, "scheduled": 2} and waiting["done"] is False
    assert waiting["scheduled_at"] == "2026-03-14T06:00:00.000Z"
    released = batch_view({**batch, "released_at": "x"}, ["cancelled"], "bat_01JPB4N3W4Y1MV6DFGCWSZ2X6C")
    assert released["counts"] == {"cancelled": 1, "queued": 2}
    cancelled = batch_view(batch, ["cancelled"] * 3, "bat_01JPB4N3W4Y1MV6DFGCWSZ2X6C")
    assert cancelled["done"] is True


@pytest.mark.parametrize("accept", ROUTES)
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_with_no_utc_equivalent_is_refused_not_a_crash(accept, value):
    assert refusal(accept, value).details[0]["reason"].startswith("is out of range")
