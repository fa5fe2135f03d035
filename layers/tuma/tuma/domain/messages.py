"""Accepting a send request: validate it, assign ids, and describe the job to queue.

The request has SayaSMS's shape (`to[]`, `from`, `body`, `callback_url?`) plus an optional
`provider`, so that SayaSMS's documented requests work unchanged against Tuma."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlparse

from tuma.domain import ids, jobs
from tuma.domain.errors import TooLarge, ValidationFailed
from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.status import QUEUED, REJECTED

PROVIDERS = ("254sms", "sayasms")
MAX_BODY_CHARS = 918  # SayaSMS's multi-part limit (6 × 153 GSM-7 characters)
MAX_RECIPIENTS = 1000  # per /v1/messages request; larger sends belong on /v1/messages/bulk
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9]{1,11}$")
_NUMERIC_SENDER = re.compile(r"^[0-9]{1,15}$")
_SEND_FIELDS = {"to", "from", "body", "callback_url", "scheduled_at", "provider"}


@dataclass(frozen=True)
class Recipient:
    index: int  # 1-based position in `to`
    message_id: str
    given: str  # the number as the caller wrote it
    number: str | None  # E.164 when sendable
    status: str  # queued | rejected
    reason: str | None = None


@dataclass(frozen=True)
class AcceptedSend:
    request_id: str
    tenant_id: str
    sender: str
    body: str
    provider: str
    callback_url: str | None
    created_at: str
    recipients: list[Recipient] = field(default_factory=list)

    @property
    def queued(self) -> list[Recipient]:
        return [r for r in self.recipients if r.status == QUEUED]

    def job(self) -> dict:
        """The queue job for the sendable recipients (format: tuma/schemas/send_job.v1.json)."""
        return jobs.new_job(
            tenant_id=self.tenant_id, request_id=self.request_id, provider=self.provider,
            sender=self.sender, body=self.body, callback_url=self.callback_url,
            recipients=[{"message_id": r.message_id, "number": r.number} for r in self.queued],
        )

    def response(self) -> dict:
        """The 202 answer, in SayaSMS's response shape."""
        return {
            "status": QUEUED,
            "message_id": self.request_id,
            "provider": self.provider,
            "recipients": [_recipient_view(r) for r in self.recipients],
            "created_at": self.created_at,
        }


def _recipient_view(recipient: Recipient) -> dict:
    view = {"number": recipient.number or recipient.given, "status": recipient.status,
            "message_id": recipient.message_id}
    if recipient.reason:
        view["reason"] = recipient.reason
    return view


def accept_send(payload: object, tenant_id: str, default_provider: str, now: datetime) -> AcceptedSend:
    """Validate a send request. Bad recipients are rejected one by one; anything else wrong with
    the request, or no sendable recipient at all, raises ValidationFailed listing every problem."""
    if not isinstance(payload, dict):
        raise ValidationFailed("invalid_request", "The request body must be a JSON object.")
    problems: list[dict] = []
    unknown = sorted(set(payload) - _SEND_FIELDS)
    problems += [{"field": name, "reason": "unknown field"} for name in unknown]
    if "scheduled_at" in payload:
        problems.append({"field": "scheduled_at", "reason": "scheduling is not supported yet"})
    sender = _check_sender(payload.get("from"), problems)
    body = _check_body(payload.get("body"), problems)
    provider = _check_provider(payload.get("provider", default_provider), problems)
    callback_url = _check_callback_url(payload.get("callback_url"), problems)
    raw_numbers = _check_to(payload.get("to"), problems)
    if problems:
        raise ValidationFailed("invalid_request", _summary(problems), problems)

    request_id = ids.new_request_id()
    recipients = _recipients(request_id, raw_numbers)
    if not any(r.status == QUEUED for r in recipients):
        details = [{"field": f"to[{r.index - 1}]", "reason": r.reason} for r in recipients]
        raise ValidationFailed("no_sendable_recipient", "No recipient in `to` can be sent to.", details)
    return AcceptedSend(
        request_id=request_id, tenant_id=tenant_id, sender=sender, body=body, provider=provider,
        callback_url=callback_url, created_at=iso_millis(now), recipients=recipients)


def iso_millis(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and Z, as SayaSMS writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _summary(problems: list[dict]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s), see details)" if len(problems) > 1 else ""
    return f"`{first['field']}` {first['reason']}{more}."


def _recipients(request_id: str, raw_numbers: list) -> list[Recipient]:
    seen: dict[str, int] = {}
    recipients = []
    for index, raw in enumerate(raw_numbers, start=1):
        message_id = ids.recipient_id(request_id, index)
        given = raw if isinstance(raw, str) else repr(raw)
        try:
            number = normalise(raw).e164
        except InvalidNumber as problem:
            recipients.append(Recipient(index, message_id, given, None, REJECTED, f"number {problem}"))
            continue
        if number in seen:
            # One SMS per number per request: a repeated number would be a doubled message.
            reason = f"duplicate of to[{seen[number] - 1}]"
            recipients.append(Recipient(index, message_id, given, number, REJECTED, reason))
            continue
        seen[number] = index
        recipients.append(Recipient(index, message_id, given, number, QUEUED))
    return recipients


def _check_to(value: object, problems: list[dict]) -> list:
    if value is None:
        problems.append({"field": "to", "reason": "is required"})
    elif not isinstance(value, list):
        problems.append({"field": "to", "reason": "must be an array of phone numbers"})
    elif not value:
        problems.append({"field": "to", "reason": "must hold at least one phone number"})
    elif len(value) > MAX_RECIPIENTS:
        raise TooLarge("too_many_recipients",
                       f"`to` holds {len(value)} numbers; at most {MAX_RECIPIENTS} are allowed per "
                       "request. Use POST /v1/messages/bulk for larger sends.",
                       [{"field": "to", "reason": f"at most {MAX_RECIPIENTS} numbers"}])
    else:
        return value
    return []


def _check_sender(value: object, problems: list[dict]) -> str:
    if value is None:
        problems.append({"field": "from", "reason": "is required"})
    elif not isinstance(value, str) or not (
            _ALPHANUMERIC_SENDER.match(value) or _NUMERIC_SENDER.match(value)):
        problems.append({"field": "from",
                         "reason": "must be at most 11 letters and digits, or at most 15 digits"})
    else:
        return value
    return ""


def _check_body(value: object, problems: list[dict]) -> str:
    if value is None:
        problems.append({"field": "body", "reason": "is required"})
    elif not isinstance(value, str) or not value.strip():
        problems.append({"field": "body", "reason": "must be a non-empty string"})
    elif len(value) > MAX_BODY_CHARS:
        problems.append({"field": "body",
                         "reason": f"is {len(value)} characters; at most {MAX_BODY_CHARS} are allowed"})
    else:
        return value
    return ""


def _check_provider(value: object, problems: list[dict]) -> str:
    if value not in PROVIDERS:
        problems.append({"field": "provider", "reason": f"must be one of {', '.join(PROVIDERS)}"})
        return ""
    return value


def _check_callback_url(value: object, problems: list[dict]) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value) if isinstance(value, str) else None
    if not parsed or parsed.scheme not in ("https", "http") or not parsed.netloc:
        problems.append({"field": "callback_url", "reason": "must be an absolute http(s) URL"})
        return None
    return value
