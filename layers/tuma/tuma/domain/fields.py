"""Checks of the fields a single send and a bulk send share. Each appends its problems as
{"field", "reason"} to a list, so one answer can name every mistake in a request."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from urllib.parse import urlsplit

import fastjsonschema

from tuma.domain import jobs
from tuma.domain.callback_urls import refusal
from tuma.domain.errors import Forbidden, ValidationFailed
from tuma.domain.requests import body_problem
from tuma.domain.scheduling import parse_scheduled_at

PROVIDERS = ("254sms", "sayasms")
_ALPHANUMERIC_SENDER = re.compile(r"^[A-Za-z0-9]{1,11}$")
_NUMERIC_SENDER = re.compile(r"^[0-9]{1,15}$")
# The job schema's maxLength (2,048): with it every job stays under SQS's 256 KiB (tuma.domain.requests).
MAX_CALLBACK_URL = jobs.schema()["properties"]["callback_url"]["maxLength"]


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
    """A URL Tuma can carry and POST to: what the job schema accepts (printable ASCII after a
    lower-case http:// or https://, at most its maxLength), and one urllib can read."""
    if value is None:
        return None
    problem = callback_url_problem(value)
    if problem:
        problems.append({"field": "callback_url", "reason": problem})
        return None
    return value


def callback_url_problem(value: object) -> str | None:
    """Why `value` cannot be a callback URL (parseability, length, scheme and characters), or None.
    The SSRF rules (tuma.domain.callback_urls) are checked beside this, not here."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or value.endswith("://"):
        return "must be an absolute http(s) URL"
    if len(value) > MAX_CALLBACK_URL:
        return f"must be at most {MAX_CALLBACK_URL} characters"
    if not job_schema_accepts("callback_url", value):
        return ("must be printable ASCII with no spaces after a lower-case http:// or https:// "
                "(percent-encode other characters, punycode a non-ASCII host)")
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # each raises ValueError on an unreadable authority
    except ValueError:
        return "must be an absolute http(s) URL with a readable host and port"
    if not host:
        return "must be an absolute http(s) URL"
    return refusal(value)  # what the callback function would refuse (tuma.domain.callback_urls)


def tenant(tenant_id: str) -> str:
    """The caller's tenant, if the job schema accepts its id: else every job would go to the DLQ.
    A key made for such a tenant (before scripts/create_api_key.py checked) is refused here."""
    if not job_schema_accepts("tenant_id", tenant_id):
        raise Forbidden("invalid_tenant", "This API key's tenant id cannot send: ask the operator for a key of a "
                        "tenant whose id is 1 to 128 letters, digits, '.', '_' or '-'.")
    return tenant_id


def job_schema_accepts(name: str, value: object) -> bool:
    """Whether send_job.v1's rule for field `name` accepts `value`: the API checks with the very
    rule the sender validates jobs with, so what one accepts the other does."""
    try:
        _job_rule(name)(value)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@cache
def _job_rule(name: str):
    return fastjsonschema.compile(jobs.schema()["properties"][name])


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
