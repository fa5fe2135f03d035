"""The domain's own checks of the fields a single send and a bulk send share: what their declared
schema (tuma.domain.contract) cannot say. Each runs on a value whose shape the schema accepted (a
body: on any string) and adds its problems as {"field", "reason"} to a list, so one answer can name
every mistake."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from tuma.domain import contract, schema_checks
from tuma.domain.callback_urls import refusal
from tuma.domain.errors import Forbidden, ValidationFailed
from tuma.domain.requests import body_problem
from tuma.domain.scheduling import parse_scheduled_at


def shaped(payload: dict, problems: list[dict]) -> set[str]:
    """The fields of `payload` whose shape the schema accepted (no problem found in them)."""
    return set(payload) - {contract.top_field(p["field"]) for p in problems}


def sender(value: object, problems: list[dict]) -> str:
    """A sender id as `from` declares it (also scripts/create_api_key.py's check of a key's ids)."""
    if value is None:
        problems.append({"field": "from", "reason": "is required"})
        return ""
    found = contract.field_problems("send_request.v1.json", "from", value)
    problems += found
    return "" if found else value


def body(value: str, problems: list[dict], name: str = "body") -> str:
    """A string body, if SMS can carry it: more than blanks, characters SQS carries, at most 6
    segments (tuma.domain.requests.body_problem). Its reason replaces the schema's (empty, over
    918 characters): segments say more than a length, and it refuses all the schema refuses."""
    problem = body_problem(value)
    if problem:
        problems[:] = [p for p in problems if p["field"] != name] + [{"field": name, "reason": problem}]
        return ""
    return value


def callback_url(value: str, problems: list[dict]) -> str | None:
    """A callback URL the schema accepted (the job schema's rule: scheme, characters, length), if
    urllib can read it and the callback function would call it (tuma.domain.callback_urls)."""
    problem = callback_url_problem(value)
    if problem:
        problems.append({"field": "callback_url", "reason": problem})
        return None
    return value


def callback_url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # each raises ValueError on an unreadable authority
    except ValueError:
        return "must be an absolute http(s) URL with a readable host and port"
    if not host:
        return "must be an absolute http(s) URL with a host"
    return refusal(value)  # what the callback function would refuse (SSRF rules)


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
        schema_checks.JOB_FIELDS[name](value)  # generated (scripts/codegen.py JOB_FIELDS): KeyError names a new one
    except schema_checks.JsonSchemaException:
        return False
    return True


def scheduled_at(value: str | None, now: datetime, problems: list[dict]) -> datetime | None:
    """The send time in UTC, or None to send now (tuma.domain.scheduling has the rules: a string
    the schema accepted may still be no time, or not one Tuma can send at)."""
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
