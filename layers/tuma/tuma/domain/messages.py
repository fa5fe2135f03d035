"""POST /v1/messages: one body to one or more recipients.

The request has SayaSMS's shape (`to[]`, `from`, `body`, `callback_url?`, `scheduled_at?`) plus an
optional `provider`, so that SayaSMS's documented requests work unchanged against Tuma. Bad recipients are
rejected one by one; anything else wrong, or no sendable recipient, is a 400 naming every problem.
The request's shape is declared in tuma/schemas/send_request.v1.json."""

from __future__ import annotations

from datetime import datetime

from tuma.domain import contract, fields, ids
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.requests import AcceptedRequest, Entry, entry_for
from tuma.domain.times import iso_millis
from tuma.domain.status import QUEUED, SCHEDULED

SCHEMA = "send_request.v1.json"  # the request's shape: tuma/schemas/, checked by tuma.domain.contract
# One job, one 254sms call; larger sends belong on /v1/messages/bulk.
MAX_RECIPIENTS = contract.declaration(SCHEMA)["properties"]["to"]["maxItems"]


def accept_send(payload: object, tenant_id: str, now: datetime, request_id: str | None = None) -> AcceptedRequest:
    """`request_id`: the id a retried request keeps (tuma.domain.requests.keyed_request_id); new when None."""
    payload = fields.require_object(payload)
    tenant_id = fields.tenant(tenant_id)
    _refuse_too_many(payload.get("to"))
    problems = contract.problems(SCHEMA, payload)
    shaped = fields.shaped(payload, problems)
    # What the schema cannot say, of the fields it accepted; each number is checked on its own below.
    scheduled_at = fields.scheduled_at(payload["scheduled_at"], now, problems) if "scheduled_at" in shaped else None
    body = fields.body(payload["body"], problems) if isinstance(payload.get("body"), str) else ""
    callback_url = fields.callback_url(payload["callback_url"], problems) if "callback_url" in shaped else None
    fields.raise_if_any(problems)

    sender, provider, numbers = payload["from"], payload.get("provider"), payload["to"]
    request_id = request_id or ids.new_request_id()
    seen: dict = {}
    entries = [entry_for(request_id, i, raw, None, seen) for i, raw in enumerate(numbers, start=1)]
    if not any(e.status == QUEUED for e in entries):
        raise ValidationFailed("no_sendable_recipient", "No recipient in `to` can be sent to.",
                               [{"field": f"to[{e.index - 1}]", "reason": e.reason} for e in entries])
    return AcceptedRequest(request_id=request_id, tenant_id=tenant_id, sender=sender, body=body,
                           provider=provider, callback_url=callback_url, created_at=iso_millis(now), entries=entries,
                           scheduled_at=iso_millis(scheduled_at) if scheduled_at else None)


def send_response(accepted: AcceptedRequest) -> dict:
    """The 202 answer, in SayaSMS's response shape (`scheduled` with its time when scheduled)."""
    waiting = SCHEDULED if accepted.scheduled_at else QUEUED
    answer = {"status": waiting, "message_id": accepted.request_id, "provider": accepted.provider,
              "encoding": accepted.shared_measure.encoding, "segments": accepted.shared_measure.segments,
              "recipients": [_recipient_view(e, waiting) for e in accepted.entries], "created_at": accepted.created_at}
    if accepted.scheduled_at:
        answer["scheduled_at"] = accepted.scheduled_at
    return answer


def _recipient_view(entry: Entry, waiting: str = QUEUED) -> dict:
    status = waiting if entry.status == QUEUED else entry.status
    view = {"number": entry.number or entry.given, "status": status, "message_id": entry.message_id}
    if entry.reason:
        view["reason"] = entry.reason
    return view


def _refuse_too_many(numbers: object) -> None:
    """413, not the schema's 400: the request is well formed, only too large for one send."""
    if isinstance(numbers, list) and len(numbers) > MAX_RECIPIENTS:
        raise TooLarge("too_many_recipients",
                       f"`to` holds {len(numbers)} numbers; at most {MAX_RECIPIENTS} are allowed per request. "
                       "Use POST /v1/messages/bulk for larger sends.",
                       [{"field": "to", "reason": f"at most {MAX_RECIPIENTS} numbers"}])
