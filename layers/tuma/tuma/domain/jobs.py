"""The send job: the versioned contract between the API (or any producer) and the sender.
Its JSON Schema is tuma/schemas/send_job.v1.json; docs/queue-jobs.md shows a producer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

from tuma.domain import ids
from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.segments import length_problem, measure

VERSION = 1


class MalformedJob(ValueError):
    """A job that can never be sent as it is; the message says what is wrong with it."""


@dataclass(frozen=True)
class JobRecipient:
    message_id: str
    number: str  # E.164, or the text given when `problem` is set
    body: str
    problem: str | None = None  # why this recipient cannot be sent (a producer's bad number)

    @property
    def index(self) -> int:
        return int(self.message_id.rsplit("_", 1)[1])


@dataclass(frozen=True)
class SendJob:
    tenant_id: str
    request_id: str
    provider: str | None  # a pin: only this provider is tried; None: the routing policy decides
    sender: str
    callback_url: str | None
    recipients: tuple[JobRecipient, ...]
    from_api: bool  # False: a producer's job, whose request Tuma has not stored yet

    @property
    def sendable(self) -> list[JobRecipient]:
        return [r for r in self.recipients if r.problem is None]


def new_job(*, tenant_id, request_id, provider, sender, body, callback_url, recipients) -> dict:
    job = {"version": VERSION, "origin": "api", "tenant_id": tenant_id, "request_id": request_id,
           "from": sender, "recipients": recipients}
    if provider:
        job["provider"] = provider
    if body is not None:
        job["body"] = body
    if callback_url:
        job["callback_url"] = callback_url
    return job


@cache
def schema() -> dict:
    return json.loads(resources.files("tuma.schemas").joinpath("send_job.v1.json").read_text())


def parse_job(text: str, queue_message_id: str) -> SendJob:
    """Validate a job; `queue_message_id` seeds the ids of a producer job that has none."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as problem:
        raise MalformedJob(f"not JSON: {problem}") from None
    try:
        validate(event=document, schema=schema())
    except SchemaValidationError as problem:
        # validation_message names the rule and path without echoing values (phone numbers).
        raise MalformedJob(f"does not match send_job.v1: {problem.validation_message}") from None
    request_id = document.get("request_id") or ids.derived_request_id(queue_message_id)
    from_api = document.get("origin") == "api"
    shared_body = document.get("body")
    recipients = []
    for position, raw in enumerate(document["recipients"], start=1):
        body = raw.get("body", shared_body)
        if body is None:
            raise MalformedJob(f"recipients[{position - 1}] has no body and the job has no shared `body`")
        message_id = raw.get("message_id") or ids.recipient_id(request_id, position)
        if ids.parse_message_id(message_id)[0] != request_id:
            raise MalformedJob(f"recipients[{position - 1}].message_id does not belong to request {request_id}")
        try:
            number = normalise(raw["number"]).e164
        except InvalidNumber as problem:
            recipients.append(JobRecipient(message_id, raw["number"], body, f"number {problem}"))
            continue
        # The API refuses a body over the segment limit; a producer's is refused here, per message.
        too_long = None if from_api else _too_long(body)
        recipients.append(JobRecipient(message_id, number, body, f"body {too_long}" if too_long else None))
    if len({r.message_id for r in recipients}) != len(recipients):
        raise MalformedJob("two recipients share a message_id")
    return SendJob(tenant_id=document["tenant_id"], request_id=request_id, provider=document.get("provider"),
                   sender=document["from"], callback_url=document.get("callback_url"),
                   recipients=tuple(recipients), from_api=from_api)


@lru_cache(maxsize=1024)
def _too_long(body: str) -> str | None:
    return length_problem(measure(body))
