"""What the release function does when a request's schedule fires: queue its held jobs.

Safe to run twice (Scheduler and Lambda's asynchronous invocations deliver at least once): the
jobs are queued first and `released_at` recorded after, so an invocation that dies between the
two leaves the request to the next delivery, never unqueued; a job queued twice is still sent
once, since the sender claims each job with a conditional write (tuma.domain.sending). A request
cancelled meanwhile is left alone: and if the cancel comes after the queueing, its job items'
`cancelled` state refuses the sender's claim."""

from __future__ import annotations

from datetime import datetime

from tuma.domain import scheduling
from tuma.domain.times import iso_millis, parse_iso
from tuma.observability import logger
from tuma.store import messages, queue, schedules

RELEASED, CANCELLED, ALREADY_RELEASED, UNKNOWN = "released", "cancelled", "already_released", "unknown"


def release(tenant_id: str, request_id: str, now: datetime) -> str:
    """Queue a scheduled request's jobs; what happened, as one of the names above."""
    request = messages.request_item(tenant_id, request_id)
    if request is None:
        logger.warning("scheduled request not found", extra={"message_id": request_id, "tenant_id": tenant_id})
        return UNKNOWN
    if request.get("cancelled_at"):
        return CANCELLED
    if request.get("released_at"):
        return ALREADY_RELEASED
    jobs = schedules.held_jobs(tenant_id, request_id)
    scheduled_at = parse_iso(request["scheduled_at"]) if request.get("scheduled_at") else None
    # Scheduler's 60-second precision may wake us before the time: the queue holds the rest.
    delay = scheduling.queue_delay_seconds(scheduled_at, now)
    queue.enqueue(jobs, delay)
    schedules.mark_released(tenant_id, request_id, iso_millis(now))
    logger.info("scheduled request released", extra={"message_id": request_id, "jobs": len(jobs), "delay_s": delay})
    return RELEASED
