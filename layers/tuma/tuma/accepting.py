"""What the send and bulk functions do with a request: check it, store it, queue its jobs, answer.

A request with an Idempotency-Key (docs/retries.md) gets an id derived from its tenant, key and
body, and runs under the key's record (tuma.store.idempotency): a retry after a timeout or a 5xx
finds what the first attempt stored and queues only the jobs it had not queued (no new ids; a
job queued twice is claimed once by the sender, tuma.store.sending)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from aws_lambda_powertools.metrics import MetricUnit

from tuma import api, settings, suppressing
from tuma.api import Response  # via tuma.api: tuma.lazy_powertools keeps event_handler from loading all
from tuma.domain import fields, ids, scheduling
from tuma.domain.errors import Unavailable
from tuma.domain.phones import mask
from tuma.domain.requests import AcceptedRequest, keyed_request_id
from tuma.domain.times import iso_millis, parse_iso
from tuma.observability import logger, metrics
from tuma.store import messages, queue

_ID_PREFIX = {"send": "msg_", "bulk": "bat_"}

Validate = Callable[..., AcceptedRequest]  # accept_send / accept_bulk: (payload, tenant, now, request_id)


def accept(app, kind: str, validate: Validate, answer: Callable[[AcceptedRequest], dict]) -> Response:
    """The 202 for a POST of `kind` ("send" or "bulk"), once per Idempotency-Key when it has one."""
    payload, tenant = api.json_body(app), fields.tenant(api.tenant_id(app))
    key = api.idempotency_key(app)

    def checked(*args) -> AcceptedRequest:
        accepted = suppressing.screen(validate(*args))  # opted-out numbers rejected `suppressed`
        api.require_sender_allowed(app, accepted.sender)  # 403 before anything is stored
        return accepted

    if key is None:
        now = datetime.now(timezone.utc)
        accepted = checked(payload, tenant, now)
        store_and_queue(accepted, kind, now)
        return _answer(answer(accepted))
    from tuma.store import idempotency  # Powertools Idempotency loads only for requests with a key

    request_id = keyed_request_id(_ID_PREFIX[kind], tenant, key, payload)
    first: list[AcceptedRequest] = []

    def work() -> dict:
        earlier = _infrastructure(messages.request_item, tenant, request_id)
        # A retry is checked as of the first attempt, so that it is answered exactly as that one.
        now = parse_iso(earlier["created_at"]) if earlier else datetime.now(timezone.utc)
        first.append(checked(payload, tenant, now, request_id))
        store_and_queue(first[0], kind, now, earlier, keyed=True)
        return {"request_id": request_id, "created_at": first[0].created_at}

    result = idempotency.once(kind, tenant, key, payload, work, app.lambda_context)
    if first:
        return _answer(answer(first[0]))
    # The first answer again: rebuilt from the same body, id and time rather than stored whole
    # (a bulk's answer can outgrow a DynamoDB item).
    accepted = checked(payload, tenant, parse_iso(result["created_at"]), request_id)
    metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
    return _answer(answer(accepted), replayed=True)


def _answer(body: dict, replayed: bool = False) -> Response:
    return Response(status_code=202, content_type="application/json", body=body,
                    headers={"Idempotent-Replayed": "true"} if replayed else None)


def store_and_queue(accepted: AcceptedRequest, kind: str, now: datetime, earlier: dict | None = None,
                    keyed: bool = False) -> None:
    """Record an accepted request, then queue its jobs: stored first, so that every message id
    answers GET from the moment the caller has it. A scheduled request is held until its time:
    by a one-time schedule (its jobs stored beside it), or, when the time is too close for the
    scheduler's precision, on the queue with a delay (docs/scheduling.md). `earlier`: the request
    item a failed attempt with the same Idempotency-Key stored; only what it did not queue is queued.
    `keyed`: the request has an Idempotency-Key, so the request item records its queued jobs."""
    jobs = accepted.jobs()
    scheduled_at = parse_iso(accepted.scheduled_at) if accepted.scheduled_at else None
    if scheduled_at and scheduling.held_by_scheduler(scheduled_at, now, settings.scheduler_min_lead()):
        if earlier is None:  # else it is stored and held already
            # The schedule first: if storing then fails, the caller gets an error and the schedule
            # finds nothing to release; the other way round, a stored request could wait forever.
            _infrastructure(_schedule_once, accepted, scheduled_at, keyed)
            _infrastructure(messages.put_request, accepted, kind, now, jobs, hold=True)
    else:
        if earlier is None:
            _infrastructure(messages.put_request, accepted, kind, now, jobs)
        done = {int(start) for start in (earlier or {}).get("queued_jobs", ())}
        pending = [job for job in jobs if scheduling.job_start(job) not in done]
        _enqueue(accepted, pending, scheduling.queue_delay_seconds(scheduled_at, datetime.now(timezone.utc)),
                 record=keyed)
    logger.append_keys(message_id=accepted.request_id)
    logger.info(f"{kind} accepted", extra={"queued": len(accepted.queued), "rejected": len(accepted.rejected),
                                           "jobs": len(jobs), "provider": accepted.provider,
                                           **({"resumed": True} if earlier else {}),
                                           **({"scheduled_at": accepted.scheduled_at} if scheduled_at else {})})
    for entry in accepted.rejected[:20]:
        logger.info("message rejected", extra={"to": mask(entry.given), "reason": entry.reason, "index": entry.index})
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=len(accepted.queued))


def _enqueue(accepted: AcceptedRequest, jobs: list[dict], delay_seconds: int, record: bool) -> None:
    """Queue `jobs`; on a failure part way, answer 503 after recording what went: on the request
    item for a request with an Idempotency-Key (its retry queues the rest), else by cancelling the
    rest (nobody can finish it, and no message may stay `queued` forever)."""
    try:
        queue.enqueue(jobs, delay_seconds)
    except queue.QueueingFailed as failure:
        logger.exception("queueing failed part way", extra={"queued_jobs": len(failure.queued), "jobs": len(jobs)})
        done = [scheduling.job_start(job) for job in failure.queued]
        if record:
            _infrastructure(messages.mark_queued, accepted.tenant_id, accepted.request_id, done)
            raise Unavailable("accept_incomplete", f"Request {accepted.request_id} was stored but only part of it "
                              "was queued. Retry the same request with the same Idempotency-Key: the rest is then "
                              "queued, with the same ids and nothing sent twice.",
                              [{"field": "request", "reason": f"{len(done)} of {len(jobs)} job(s) queued"}]) from None
        cancelled = _cancel_unqueued(accepted, [job for job in jobs if scheduling.job_start(job) not in set(done)])
        raise Unavailable("accept_incomplete", f"Request {accepted.request_id} was only partly queued: "
                          f"{cancelled} message(s) were cancelled, the others go out (GET /v1/messages/"
                          f"{accepted.request_id} shows which). Send an Idempotency-Key to make such a request "
                          "retryable.", [{"field": "request", "reason": f"{len(done)} of {len(jobs)} job(s) queued"}]
                          ) from None
    if record:  # so that a later retry with the key finds nothing left to queue
        _infrastructure(messages.mark_queued, accepted.tenant_id, accepted.request_id,
                        [scheduling.job_start(job) for job in jobs])


def _cancel_unqueued(accepted: AcceptedRequest, jobs: list[dict]) -> int:
    """Cancel jobs SQS may not have taken, as DELETE would (a copy SQS did take then finds its job
    cancelled and sends nothing); how many messages were cancelled. Best effort: on failure the
    messages stay `queued`, and the error is logged."""
    from tuma.store import cancels  # only after a failed enqueue: kept off the accept path's cold start

    at, expires, cancelled = iso_millis(datetime.now(timezone.utc)), messages.expiry_of(accepted), 0
    try:
        for job in jobs:
            won, _ = cancels.cancel_job(accepted.tenant_id, accepted.request_id, scheduling.job_start(job), at, expires)
            if won:
                indices = [ids.parse_message_id(r["message_id"])[1] for r in job["recipients"]]
                cancels.put_cancelled_messages(accepted.tenant_id, accepted.request_id, indices, at, expires)
                cancelled += len(indices)
    except Exception:
        logger.exception("unqueued jobs not cancelled", extra={"message_id": accepted.request_id})
    return cancelled


def _schedule_once(accepted: AcceptedRequest, scheduled_at: datetime, keyed: bool) -> None:
    """The request's release schedule; with an Idempotency-Key, one an earlier attempt made (and
    then failed to store the request) is the one wanted: same id, same time."""
    from tuma.store import schedules  # only requests held by the scheduler: most are sent now

    try:
        schedules.create_release_schedule(accepted.tenant_id, accepted.request_id, scheduled_at)
    except Exception as problem:
        if not (keyed and getattr(problem, "response", {}).get("Error", {}).get("Code") == "ConflictException"):
            raise


def _infrastructure(call, *args, **kwargs):
    """An AWS write of the accept path; its failure is a 503 the caller may retry, not a 502."""
    try:
        return call(*args, **kwargs)
    except Unavailable:
        raise
    except Exception:
        logger.exception("accept could not store", extra={"call": call.__name__})
        raise Unavailable("unavailable", "Tuma could not store the request just now. Retry the same request with "
                          "the same Idempotency-Key.") from None
