"""What the send and bulk functions do with an accepted request."""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from tuma.domain.phones import mask
from tuma.domain.requests import AcceptedRequest
from tuma.observability import logger, metrics
from tuma.store import messages, queue


def store_and_queue(accepted: AcceptedRequest, kind: str, now: datetime) -> None:
    """Record an accepted request, then queue its jobs: stored first, so that every message id
    answers GET from the moment the caller has it."""
    messages.put_request(accepted, kind, now)
    jobs = accepted.jobs()
    queue.enqueue(jobs)
    logger.append_keys(message_id=accepted.request_id)
    logger.info(f"{kind} accepted", extra={"queued": len(accepted.queued), "rejected": len(accepted.rejected),
                                           "jobs": len(jobs), "provider": accepted.provider})
    for entry in accepted.rejected[:20]:
        logger.info("message rejected", extra={"to": mask(entry.given), "reason": entry.reason, "index": entry.index})
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=len(accepted.queued))
