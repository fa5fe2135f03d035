"""POST /v1/messages/bulk: personalised messages, in two forms.

- SayaSMS's own: `{from, messages: [{to, body}], callback_url?}`;
- a template: `{from, template: "Hi {name}, order {order} is ready", recipients: [{to, vars}]}`.

Each entry is checked like a single send; a bad one (number, body, missing variable) is rejected
by index with its reason and the rest are accepted. The batch id is `bat_<ULID>`, and the message
at index i (0-based) is `<batch id>_<i+1>`. The request's shape, an entry's included, is declared
in tuma/schemas/bulk_request.v1.json."""

from __future__ import annotations

import string
from datetime import datetime

from tuma.domain import contract, fields, ids
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.requests import AcceptedRequest, Entry, _shown, body_problem, bounded, entry_for
from tuma.domain.times import iso_millis
from tuma.domain.status import QUEUED, REJECTED, SCHEDULED

SCHEMA = "bulk_request.v1.json"  # the request's shape: tuma/schemas/, checked by tuma.domain.contract
ENTRY_LISTS = ("messages", "recipients")  # checked entry by entry: a bad entry is rejected alone
MAX_MESSAGES = contract.declaration(SCHEMA)["properties"]["messages"]["maxItems"]


def accept_bulk(payload: object, tenant_id: str, now: datetime, request_id: str | None = None) -> AcceptedRequest:
    """`request_id`: the id a retried request keeps (tuma.domain.requests.keyed_request_id); new when None."""
    payload = fields.require_object(payload)
    tenant_id = fields.tenant(tenant_id)
    for name in ENTRY_LISTS:
        _refuse_too_many(name, payload.get(name))
    problems = contract.problems(SCHEMA, payload, ENTRY_LISTS)
    shaped = fields.shaped(payload, problems)
    # What the schema cannot say, of the fields it accepted; each entry is checked on its own below.
    scheduled_at = fields.scheduled_at(payload["scheduled_at"], now, problems) if "scheduled_at" in shaped else None
    callback_url = fields.callback_url(payload["callback_url"], problems) if "callback_url" in shaped else None
    template = _template(payload["template"], problems) if "template" in shaped else None
    fields.raise_if_any(problems)

    sender, provider = payload["from"], payload.get("provider")
    items_field = "recipients" if template is not None else "messages"
    items = payload[items_field]
    batch_id = request_id or ids.new_batch_id()
    seen: dict = {}
    entries = []
    for index, item in enumerate(items, start=1):
        raw, body, problem = _entry_parts(items_field, item, template)
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


def _template(text: str, problems: list[dict]) -> list | None:
    """The template parsed into (literal, variable) parts; None, with its problem, when it has
    only blanks or a placeholder that is not a plain name."""
    if not text.strip():
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


def _refuse_too_many(name: str, items: object) -> None:
    """413, not the schema's 400: the request is well formed, only too large for one batch."""
    if isinstance(items, list) and len(items) > MAX_MESSAGES:
        raise TooLarge("too_many_messages",
                       f"`{name}` holds {len(items)} entries; at most {MAX_MESSAGES} are allowed per request.",
                       [{"field": name, "reason": f"at most {MAX_MESSAGES} entries"}])


def _entry_parts(items_field: str, item: object, template: list | None) -> tuple[object, str | None, str | None]:
    """(number as given, body, problem) of one entry: its declared shape, then its body."""
    shape = contract.entry_problem(SCHEMA, items_field, item)
    if shape and template is None and shape[0]["field"] == "body" and isinstance(item.get("body"), str):
        # Empty or over 918 characters: the segments say more than the length (as fields.body).
        return item.get("to"), None, f"body {body_problem(item['body']) or shape[0]['reason']}"
    if shape:
        return None, None, _entry_reason(shape)
    if template is None:
        body = item["body"]
    else:
        variables = item.get("vars", {})
        missing = [name for _, name, _, _ in template if name is not None and name not in variables]
        if missing:
            return None, None, f"template variable {{{missing[0]}}} is missing"
        body = "".join(literal + ("" if name is None else str(variables[name])) for literal, name, _, _ in template)
    problem = body_problem(body)
    return item["to"], body, (f"body {problem}" if problem else None)


def _entry_reason(problems: list[dict]) -> str:
    """An entry's shape problems in one reason (the entry is rejected with it)."""
    unknown = [p["field"] for p in problems if p["reason"] == "unknown field"]
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    first = problems[0]
    return f"{first['field']} {first['reason']}" if first["field"] else first["reason"]


def _given(item: object) -> str:
    to = item.get("to") if isinstance(item, dict) else None
    # Never empty: an empty entry in a stored chunk means "no message at this position".
    return _shown(to) if to not in (None, "") else "(none)"
