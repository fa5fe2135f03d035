"""Checks of the fields a single send and a bulk send share. Each appends its problems as
{"field", "reason"} to a list, so one answer can name every mistake in a request."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlparse

from tuma.domain.callback_urls import refusal
from tuma.domain.errors import ValidationFailed
from tuma.domain.requests import body_problem
from tuma.domain.scheduling import parse_scheduled_at

PROVIDERS = ("254sms", "sayasms")
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9]{1,11}$")
_NUMERIC_SENDER = re.compile(r"^[0-9]{1,15}$")


def unknown_fields(payload: dict, allowed: set[str], problems: list[dict]) -> None:
    problems += [{"field": name, "reason": "unknown field"} for name in sorted(set(payload) - allowed)]


def sender(value: object, problems: list[dict]) -> str:
    if value is None:
        problems.append({"field": "from", "reason": "is required"})
    elif not isinstance(value, str) or not (_ALPHANUMERIC_SENDER.fullmatch(value) or _NUMERIC_SENDER.fullmatch(value)):
        problems.append({"field": "from", "reason": "must be at most 11 letters and digits, or at most 15 digits"})
    else:
        return value
    return ""


def body(value: object, problems: list[dict], name: str = "body") -> str:
    if value is None:
        problems.append({"field": name, "reason": "is required"})
        return ""
    problem = body_problem(value)
    if problem:
        problems.append({"field": name, "reason": problem})
        return ""
    return value


def pinned_provider(payload: dict, problems: list[dict]) -> str | None:
    """The provider a request names: only it will be tried. None: the routing policy decides."""
    if "provider" not in payload:
        return None
    if payload["provider"] not in PROVIDERS:
        problems.append({"field": "provider", "reason": f"must be one of {', '.join(PROVIDERS)}"})
        return None
    return payload["provider"]


def callback_url(value: object, problems: list[dict]) -> str | None:
    if value is None:
        return None
    if refused := refusal(value):  # what the callback function would refuse (tuma.domain.callback_urls)
        return problems.append({"field": "callback_url", "reason": refused})
    parsed = urlparse(value) if isinstance(value, str) else None
    if not parsed or parsed.scheme not in ("https", "http") or not parsed.netloc:
        problems.append({"field": "callback_url", "reason": "must be an absolute http(s) URL"})
        return None
    return value


def scheduled_at(value: object, now: datetime, problems: list[dict]) -> datetime | None:
    """The send time in UTC, or None to send now (tuma.domain.scheduling has the rules)."""
    if value is None:
        return None
    moment, problem = parse_scheduled_at(value, now)
    if problem:
        problems.append({"field": "scheduled_at", "reason": problem})
    return moment


def raise_if_any(problems: list[dict]) -> None:
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s), see details)" if len(problems) > 1 else ""
        raise ValidationFailed("invalid_request", f"`{first['field']}` {first['reason']}{more}.", problems)


def require_object(payload: object) -> dict:
    if not isinstance(payload, dict):
        raise ValidationFailed("invalid_request", "The request body must be a JSON object.")
    return payload
