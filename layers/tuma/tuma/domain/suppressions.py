"""Opt-outs: a number on the tenant's suppression list is `rejected` with reason `suppressed`,
before any provider call, in a send, a bulk send or a producer's job."""

from __future__ import annotations

from dataclasses import replace

from tuma.domain import contract, ids
from tuma.domain.errors import ValidationFailed
from tuma.domain.jobs import SendJob
from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.requests import AcceptedRequest
from tuma.domain.status import QUEUED, REJECTED

SUPPRESSED = "suppressed"
SCHEMA = "suppression_request.v1.json"


def screen(accepted: AcceptedRequest, suppressed: set[str]) -> AcceptedRequest:
    """The request with its suppressed numbers rejected; a 400 when that leaves nothing to send,
    as when every number is invalid."""
    if not suppressed:
        return accepted
    entries = [replace(e, status=REJECTED, reason=SUPPRESSED) if e.status == QUEUED and e.number in suppressed else e
               for e in accepted.entries]
    if not any(e.status == QUEUED for e in entries):
        batch = ids.is_batch(accepted.request_id)
        raise ValidationFailed("no_sendable_message" if batch else "no_sendable_recipient",
                               "No message of the request can be sent." if batch else "No recipient in `to` can be sent to.",
                               [{"field": f"{'entries' if batch else 'to'}[{e.index - 1}]", "reason": e.reason}
                                for e in entries[:100]])
    return replace(accepted, entries=entries)


def screen_job(job: SendJob, suppressed: set[str]) -> SendJob:
    """A producer's job with its suppressed recipients marked, so the sender rejects them."""
    if not suppressed:
        return job
    return replace(job, recipients=tuple(replace(r, problem=SUPPRESSED) if r.problem is None and r.number in suppressed
                                         else r for r in job.recipients))


def number(raw: str) -> str:
    """The E.164 form of a number in a suppressions route's path (written as Kenyans write them)."""
    try:
        return normalise(raw).e164
    except InvalidNumber as problem:
        raise ValidationFailed("invalid_number", f"{raw!r} is not a number Tuma can send to: {problem}.",
                               [{"field": "number", "reason": f"number {problem}"}]) from None


def reason(payload: object) -> str | None:
    """The optional `reason` of a PUT (e.g. "replied STOP"); the body may be absent. Its shape is
    declared in tuma/schemas/suppression_request.v1.json."""
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise ValidationFailed("invalid_request", "The request body must be a JSON object.")
    problems = contract.problems(SCHEMA, payload)
    if problems:
        raise ValidationFailed("invalid_request", f"`{problems[0]['field']}` {problems[0]['reason']}.", problems)
    return payload.get("reason")
