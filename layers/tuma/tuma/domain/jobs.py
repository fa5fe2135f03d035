"""The send job: the versioned contract between the API (or any producer) and the sender."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

VERSION = 1


class MalformedJob(ValueError):
    """A job that can never be sent as it is; the message says what is wrong with it."""


@dataclass(frozen=True)
class JobRecipient:
    message_id: str
    number: str  # E.164

    @property
    def index(self) -> int:
        return int(self.message_id.rsplit("_", 1)[1])


@dataclass(frozen=True)
class SendJob:
    tenant_id: str
    request_id: str
    provider: str
    sender: str
    body: str
    callback_url: str | None
    recipients: tuple[JobRecipient, ...]


def new_job(*, tenant_id, request_id, provider, sender, body, callback_url, recipients) -> dict:
    job = {"version": VERSION, "tenant_id": tenant_id, "request_id": request_id,
           "provider": provider, "from": sender, "body": body, "recipients": recipients}
    if callback_url:
        job["callback_url"] = callback_url
    return job


@cache
def schema() -> dict:
    return json.loads(resources.files("tuma.schemas").joinpath("send_job.v1.json").read_text())


def parse_job(text: str) -> SendJob:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as problem:
        raise MalformedJob(f"not JSON: {problem}") from None
    try:
        validate(event=document, schema=schema())
    except SchemaValidationError as problem:
        # validation_message names the rule and path without echoing values (phone numbers).
        raise MalformedJob(f"does not match send_job.v1: {problem.validation_message}") from None
    recipients = tuple(JobRecipient(r["message_id"], r["number"]) for r in document["recipients"])
    if any(not r.message_id.startswith(document["request_id"] + "_") for r in recipients):
        raise MalformedJob("a recipient's message_id does not belong to the job's request_id")
    return SendJob(
        tenant_id=document["tenant_id"], request_id=document["request_id"],
        provider=document["provider"], sender=document["from"], body=document["body"],
        callback_url=document.get("callback_url"), recipients=recipients)
