"""What the send and bulk functions do with an accepted request."""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from tuma import settings
from tuma.domain import scheduling
from tuma.domain.phones import mask
from tuma.domain.requests import AcceptedRequest
from tuma.domain.times import parse_iso
from tuma.observability import logger, metrics
from tuma.store import messages, queue, schedules


def store_and_queue(accepted: AcceptedRequest, kind: str, now: datetime) -> None:
    """Record an accepted request, then queue its jobs: stored first, so that every message id
    answers GET from the moment the caller has it. A scheduled request is held until its time:
    by a one-time schedule (its jobs stored beside it), or, when the time is too close for the
    scheduler's precision, on the queue with a delay (docs/scheduling.md)."""
    jobs = accepted.jobs()
    scheduled_at = parse_iso(accepted.scheduled_at) if accepted.scheduled_at else None
    if scheduled_at and scheduling.held_by_scheduler(scheduled_at, now, settings.scheduler_min_lead()):
        # The schedule first: if storing then fails, the caller gets an error and the schedule
        # finds nothing to release; the other way round, a stored request could wait forever.
        schedules.create_release_schedule(accepted.tenant_id, accepted.request_id, scheduled_at)
        messages.put_request(accepted, kind, now, jobs, hold=True)
    else:
        messages.put_request(accepted, kind, now, jobs)
        queue.enqueue(jobs, scheduling.queue_delay_seconds(scheduled_at, now))
    logger.append_keys(message_id=accepted.request_id)
    logger.info(f"{kind} accepted", extra={"queued": len(accepted.queued), "rejected": len(accepted.rejected),
                                           "jobs": len(jobs), "provider": accepted.provider,
                                           **({"scheduled_at": accepted.scheduled_at} if scheduled_at else {})})
    for entry in accepted.rejected[:20]:
        logger.info("message rejected", extra={"to": mask(entry.given), "reason": entry.reason, "index": entry.index})
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=len(accepted.queued))
