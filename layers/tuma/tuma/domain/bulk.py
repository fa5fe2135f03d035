"""POST /v1/messages/bulk: personalised messages, in two forms.

- SayaSMS's own: `{from, messages: [{to, body}], callback_url?}`;
- a template: `{from, template: "Hi {name}, order {order} is ready", recipients: [{to, vars}]}`.

Each entry is checked like a single send; a bad one (number, body, missing variable) is rejected
by index with its reason and the rest are accepted. The batch id is `bat_<ULID>`, and the message
at index i (0-based) is `<batch id>_<i+1>`."""

from __future__ import annotations

import string
from datetime import datetime

from tuma.domain import fields, ids
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.requests import AcceptedRequest, Entry, _shown, body_problem, bounded, entry_for
from tuma.domain.times import iso_millis
from tuma.domain.status import QUEUED, REJECTED, SCHEDULED

MAX_MESSAGES = 10_000
_FIELDS = {"from", "messages", "template", "recipients", "callback_url", "provider", "scheduled_at"}


def accept_bulk(payload: object, tenant_id: str, now: datetime, request_id: str | None = None) -> AcceptedRequest:
    """`request_id`: the id a retried request keeps (tuma.domain.requests.keyed_request_id); new when None."""
    payload = fields.require_object(payload)
    tenant_id = fields.tenant(tenant_id)
    problems: list[dict] = []
    fields.unknown_fields(payload, _FIELDS, problems)
    scheduled_at = fields.scheduled_at(payload.get("scheduled_at"), now, problems)
    sender = fields.sender(payload.get("from"), problems)
    provider = fields.pinned_provider(payload, problems)
    callback_url = fields.callback_url(payload.get("callback_url"), problems)
    template = _template(payload, problems)
    items_field = "recipients" if template is not None else "messages"
    items = _items(payload, items_field, problems)
    fields.raise_if_any(problems)

    batch_id = request_id or ids.new_batch_id()
    seen: dict = {}
    entries = []
    for index, item in enumerate(items, start=1):
        raw, body, problem = _entry_parts(item, template)
        if problem:
            entries.append(Entry(index, ids.recipient_id(batch_id, index), _given(item), None, REJECTED, bounded(problem),
                                 None))
        else:
            entries.append(entry_for(batch_id, index, raw, body, seen))
    if not any(e.status == QUEUED for e in entries):
        raise ValidationFailed("no_sendable_message", f"No entry of `{items_field}` can be sent.",
                               [{"field": f"{items_field}[{e.index - 1}]", "reason": e.reason} for e in entries[:100]])
    return AcceptedRequest(request_id=batch_id, tenant_id=tenant_id, sender=sender, body=None, provider=provider,
                           callback_url=callback_url, created_at=iso_millis(now), entries=entries,
                           scheduled_at=iso_millis(scheduled_at) if scheduled_at else None)


def bulk_response(accepted: AcceptedRequest) -> dict:
    batch_id = accepted.request_id
    answer = {
        "status": SCHEDULED if accepted.scheduled_at else QUEUED,
        "batch_id": batch_id,
        "provider": accepted.provider,
        "total": len(accepted.entries),
        "accepted": len(accepted.queued),
        "segments": accepted.segments,  # of the accepted messages together
        "rejected": [{"index": e.index - 1, "to": e.given, "reason": e.reason} for e in accepted.rejected],
        "message_ids": {
            "rule": f"the message at index i (0-based) has id {batch_id}_<i+1>",
            "first": ids.recipient_id(batch_id, 1),
            "last": ids.recipient_id(batch_id, len(accepted.entries)),
        },
        "created_at": accepted.created_at,
    }
    if accepted.scheduled_at:
        answer["scheduled_at"] = accepted.scheduled_at
    return answer


def _template(payload: dict, problems: list[dict]) -> list | None:
    """The template parsed into (literal, variable) parts, or None for the `messages` form."""
    if "template" not in payload:
        if "recipients" in payload:
            problems.append({"field": "recipients", "reason": "goes with `template`; use `messages` without one"})
        return None
    if "messages" in payload:
        problems.append({"field": "messages", "reason": "give either `messages` or `template` with `recipients`"})
    text = payload["template"]
    if not isinstance(text, str) or not text.strip():
        problems.append({"field": "template", "reason": "must be a non-empty string"})
        return None
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as problem:
        problems.append({"field": "template", "reason": f"is not a valid template: {problem}"})
        return None
    for _, name, spec, conversion in parts:
        if name is not None and (not name.isidentifier() or spec or conversion):
            problems.append({"field": "template", "reason": f"placeholder {{{name}}} must be a plain name like {{name}}"})
            return None
    return parts


def _items(payload: dict, name: str, problems: list[dict]) -> list:
    value = payload.get(name)
    if value is None:
        problems.append({"field": name, "reason": "is required"})
    elif not isinstance(value, list) or not value:
        problems.append({"field": name, "reason": "must be a non-empty array"})
    elif len(value) > MAX_MESSAGES:
        raise TooLarge("too_many_messages",
                       f"`{name}` holds {len(value)} entries; at most {MAX_MESSAGES} are allowed per request.",
                       [{"field": name, "reason": f"at most {MAX_MESSAGES} entries"}])
    else:
        return value
    return []


def _entry_parts(item: object, template: list | None) -> tuple[object, str | None, str | None]:
    """(number as given, body, problem) of one entry."""
    allowed = {"to", "vars"} if template is not None else {"to", "body"}
    if not isinstance(item, dict):
        return None, None, "must be an object"
    unknown = sorted(set(item) - allowed)
    if unknown:
        return None, None, f"unknown field(s): {', '.join(unknown)}"
    if template is None:
        body = item.get("body")
        problem = body_problem(body)
        return item.get("to"), body, (f"body {problem}" if problem else None)
    variables = item.get("vars", {})
    if not isinstance(variables, dict):
        return None, None, "vars must be an object"
    missing = [name for _, name, _, _ in template if name is not None and name not in variables]
    if missing:
        return None, None, f"template variable {{{missing[0]}}} is missing"
    body = "".join(literal + ("" if name is None else str(variables[name])) for literal, name, _, _ in template)
    problem = body_problem(body)
    return item.get("to"), body, (f"body {problem}" if problem else None)


def _given(item: object) -> str:
    to = item.get("to") if isinstance(item, dict) else None
    # Never empty: an empty entry in a stored chunk means "no message at this position".
    return _shown(to) if to not in (None, "") else "(none)"
