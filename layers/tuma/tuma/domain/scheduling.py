"""Scheduled sends (`scheduled_at`): the rules, with no AWS in them (docs/scheduling.md).

Tuma holds a scheduled request itself, for both providers: its jobs are stored beside it and one
EventBridge Scheduler one-time schedule wakes the release function at the time, which queues them.
A time closer than the scheduler's own precision is held by the queue instead (SQS DelaySeconds).
Either way a message is never sent before its `scheduled_at`, and can be cancelled until the
sender claims its job."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from tuma.domain import ids

MAX_SCHEDULE_AHEAD = timedelta(days=30)  # the horizon: scheduled_at at most this far ahead
# EventBridge Scheduler invokes targets "with 60 second precision" (at 1:00 means 1:00:00-1:00:59),
# and refuses an at() already past when the schedule is created: a time closer than this is held
# on the queue with DelaySeconds instead.
SCHEDULER_MIN_LEAD = timedelta(seconds=60)
MAX_QUEUE_DELAY_S = 900  # SQS's DelaySeconds limit
EXAMPLE = "2026-03-14T09:00:00+03:00"


def parse_scheduled_at(value: object, now: datetime) -> tuple[datetime | None, str | None]:
    """(the moment in UTC, None) or (None, why it is refused). ISO 8601 is read by the standard
    library's datetime.fromisoformat, which takes every form the seed documents use."""
    if not isinstance(value, str):
        return None, f"must be an ISO 8601 date and time as a string, e.g. {EXAMPLE}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None, f"is not an ISO 8601 date and time, e.g. {EXAMPLE}"
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None, ("has no UTC offset, so the time is ambiguous: add Z for UTC or an offset "
                      f"such as +03:00 (Nairobi), e.g. {EXAMPLE}")
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        return None, f"is out of range, e.g. {EXAMPLE}"
    if moment <= now:
        return None, f"must be in the future (it is {_shown(moment)}; now is {_shown(now)})"
    if moment > now + MAX_SCHEDULE_AHEAD:
        return None, (f"is more than {MAX_SCHEDULE_AHEAD.days} days ahead (it is {_shown(moment)}); "
                      f"the latest allowed now is {_shown(now + MAX_SCHEDULE_AHEAD)}")
    return moment, None


def _shown(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def held_by_scheduler(scheduled_at: datetime, now: datetime, min_lead: timedelta = SCHEDULER_MIN_LEAD) -> bool:
    """Whether a one-time schedule holds the request (True) or the queue's DelaySeconds (False)."""
    return scheduled_at - now >= min_lead


def queue_delay_seconds(scheduled_at: datetime | None, now: datetime) -> int:
    """Seconds a job must wait on the queue not to go out before `scheduled_at` (rounded up): a
    request held by the queue, or one the scheduler woke early (its 60-second precision)."""
    if scheduled_at is None or scheduled_at <= now:
        return 0
    return min(math.ceil((scheduled_at - now).total_seconds()), MAX_QUEUE_DELAY_S)


def at_expression(scheduled_at: datetime) -> str:
    """The one-time schedule expression, in UTC to the second below: the release function makes
    up the fraction (queue_delay_seconds), so nothing leaves early."""
    return "at(" + scheduled_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def schedule_name(request_id: str) -> str:
    """A request's schedule: its id (ULIDs are unique; Scheduler allows [0-9a-zA-Z-_.]{1,64})."""
    return request_id


def release_input(tenant_id: str, request_id: str) -> dict:
    return {"tenant_id": tenant_id, "request_id": request_id}


def job_start(job: dict) -> int:
    """The position of a job's first message (its job item is J#<that position>)."""
    return ids.parse_message_id(job["recipients"][0]["message_id"])[1]


def job_members(starts: list[int], total: int, rejected: set[int]) -> dict[int, list[int]]:
    """The positions each job holds: jobs are consecutive runs of the sendable messages, so job k
    holds the sendable positions from its start to the next job's start."""
    ordered = sorted(starts)
    ends = [*ordered[1:], total + 1]
    return {start: [i for i in range(start, end) if i not in rejected] for start, end in zip(ordered, ends)}


def job_of(starts: list[int], index: int) -> int | None:
    """The start of the job holding position `index` (None: before the first job)."""
    return max((s for s in starts if s <= index), default=None)
