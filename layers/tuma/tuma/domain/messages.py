"""POST /v1/messages: one body to one or more recipients.

The request has SayaSMS's shape (`to[]`, `from`, `body`, `callback_url?`, `scheduled_at?`) plus an
optional `provider`, so that SayaSMS's documented requests work unchanged against Tuma. Bad recipients are
rejected one by one; anything else wrong, or no sendable recipient, is a 400 naming every problem."""

from __future__ import annotations

from datetime import datetime

from tuma.domain import fields, ids
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.requests import AcceptedRequest, Entry, entry_for
from tuma.domain.times import iso_millis
from tuma.domain.status import QUEUED, SCHEDULED

MAX_RECIPIENTS = 1000  # one job, one 254sms call; larger sends belong on /v1/messages/bulk
_FIELDS = {"to", "from", "body", "callback_url", "scheduled_at", "provider"}


def accept_send(payload: object, tenant_id: str, now: datetime, request_id: str | None = None) -> AcceptedRequest:
    """`request_id`: the id a retried request keeps (tuma.domain.requests.keyed_request_id); new when None."""
    payload = fields.require_object(payload)
    tenant_id = fields.tenant(tenant_id)
    problems: list[dict] = []
    fields.unknown_fields(payload, _FIELDS, problems)
    scheduled_at = fields.scheduled_at(payload.get("scheduled_at"), now, problems)
    sender = fields.sender(payload.get("from"), problems)
    body = fields.body(payload.get("body"), problems)
    provider = fields.pinned_provider(payload, problems)
    callback_url = fields.callback_url(payload.get("callback_url"), problems)
    numbers = _numbers(payload.get("to"), problems)
    fields.raise_if_any(problems)

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


def _numbers(value: object, problems: list[dict]) -> list:
    if value is None:
        problems.append({"field": "to", "reason": "is required"})
    elif not isinstance(value, list):
        problems.append({"field": "to", "reason": "must be an array of phone numbers"})
    elif not value:
        problems.append({"field": "to", "reason": "must hold at least one phone number"})
    elif len(value) > MAX_RECIPIENTS:
        raise TooLarge("too_many_recipients",
                       f"`to` holds {len(value)} numbers; at most {MAX_RECIPIENTS} are allowed per request. "
                       "Use POST /v1/messages/bulk for larger sends.",
                       [{"field": "to", "reason": f"at most {MAX_RECIPIENTS} numbers"}])
    else:
        return value
    return []
