"""DELETE /v1/messages/{id}: cancel a whole request (msg_… or bat_…) or one message (…_<n>) that
the sender has not taken yet, scheduled or still queued (docs/scheduling.md).

The cancel's conditional writes on job items (tuma.store.cancels) decide every race with the
sender. Each step can be run again: a cancel that died half-way is finished by the next DELETE,
which then answers 200 as the first would have."""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from tuma.domain import ids, scheduling
from tuma.domain.errors import Conflict, NotFound
from tuma.domain.times import iso_millis
from tuma.domain.status import CANCELLED, REJECTED
from tuma.domain.views import batch_view, message_view, request_view
from tuma.observability import logger, metrics
from tuma.store import cancels, messages, schedules
from tuma.store.table import expires_at

SENT_ALREADY = "has already been sent or is being sent: the sender took it before this cancel"
NO_JOBS = ("cannot be cancelled: Tuma keeps no record of its send jobs (a producer put it on the queue, "
           "or it was accepted before cancelling existed)")


def cancel(tenant_id: str, message_id: str, now: datetime) -> dict:
    """The view of what was cancelled; NotFound, or Conflict when nothing is left to cancel."""
    parsed = ids.parse_message_id(message_id)
    if parsed is None:
        raise NotFound("not_found", f"No message {message_id}.")
    request_id, index = parsed
    if index is None:
        return _cancel_request(tenant_id, request_id, now)
    return _cancel_message(tenant_id, request_id, index, message_id, now)


def _cancel_request(tenant_id: str, request_id: str, now: datetime) -> dict:
    request = messages.request_item(tenant_id, request_id)
    if request is None:
        raise NotFound("not_found", f"No message {request_id}.")
    if request.get("cancelled_at"):
        raise Conflict("already_cancelled", f"{request_id} was already cancelled at {request['cancelled_at']}.")
    starts = [int(s) for s in request.get("job_starts") or []]
    if not starts:
        raise Conflict("not_cancellable", f"{request_id} {NO_JOBS}.")
    at, expires = iso_millis(now), expires_at(now)
    members = scheduling.job_members(starts, int(request["total"]), cancels.rejected_positions(tenant_id, request_id))
    won = cancelled = 0
    for start in starts:
        cancelled_now, job = cancels.cancel_job(tenant_id, request_id, start, at, expires)
        # A job found cancelled on a request not marked cancelled: an earlier cancel died here.
        if cancelled_now or job.get("state") == cancels.JOB_CANCELLED:
            won += 1
            indices = cancels.unsent_positions(job, members[start])
            cancels.put_cancelled_messages(tenant_id, request_id, indices, at, expires)
            cancelled += len(indices)
    if not won:
        raise Conflict("already_sent", f"{request_id} {SENT_ALREADY}.")
    cancels.mark_request_cancelled(tenant_id, request_id, at)
    if request.get("scheduled_at") and not request.get("released_at"):
        _delete_schedule(request_id)
    logger.info("request cancelled", extra={"message_id": request_id, "jobs": len(starts), "jobs_cancelled": won})
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=cancelled)
    if ids.is_batch(request_id):
        request, touched, _ = messages.get_statuses(tenant_id, request_id)
        return batch_view(request, [item["status"] for item in touched.values()], request_id)
    return request_view(*messages.get_request(tenant_id, request_id), request_id)


def _delete_schedule(request_id: str) -> None:
    """Best effort: a schedule left behind fires, and the release finds the request cancelled."""
    try:
        schedules.delete_release_schedule(request_id)
    except Exception as problem:  # noqa: BLE001 - the cancel itself has succeeded
        logger.warning("schedule not deleted", extra={"message_id": request_id, "reason": str(problem)})


def _cancel_message(tenant_id: str, request_id: str, index: int, message_id: str, now: datetime) -> dict:
    request, chunk, item = messages.get_message(tenant_id, request_id, index)
    view = message_view(request, chunk, item, message_id)  # NotFound for an unknown id
    if view["status"] == CANCELLED:
        raise Conflict("already_cancelled", f"{message_id} was already cancelled.")
    if view["status"] == REJECTED:
        raise Conflict("not_cancellable", f"{message_id} was rejected when it was accepted: it is never sent.")
    if item is not None:
        raise Conflict("already_sent", f"{message_id} is {view['status']}: it {SENT_ALREADY}.")
    start = scheduling.job_of([int(s) for s in request.get("job_starts") or []], index)
    if start is None:
        raise Conflict("not_cancellable", f"{message_id} {NO_JOBS}.")
    at, expires = iso_millis(now), expires_at(now)
    cancelled_now, job = cancels.cancel_in_job(tenant_id, request_id, start, index, expires)
    # Already in the job's cancelled set with no message item: an earlier cancel died here.
    if not cancelled_now and index not in cancels.cancelled_positions(job):
        if job.get("state") == cancels.JOB_CANCELLED:
            raise Conflict("already_cancelled", f"{message_id} was already cancelled with its request.")
        raise Conflict("already_sent", f"{message_id} {SENT_ALREADY}.")
    cancels.put_cancelled_message(tenant_id, request_id, index, at, expires)
    logger.info("message cancelled", extra={"message_id": message_id})
    metrics.add_metric(name="MessagesCancelled", unit=MetricUnit.Count, value=1)
    return message_view(*messages.get_message(tenant_id, request_id, index), message_id)
