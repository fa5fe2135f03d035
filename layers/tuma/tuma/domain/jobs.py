"""The send job: the versioned contract between the API (or any producer) and the sender.
Its JSON Schema is tuma/schemas/send_job.v1.json; docs/queue-jobs.md shows a producer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from tuma.domain import ids, schema_checks
from tuma.domain.phones import InvalidNumber, normalise
from tuma.domain.segments import length_problem, measure

VERSION = 1


class MalformedJob(ValueError):
    """A job that can never be sent as it is; the message says what is wrong with it."""


class JobConflict(MalformedJob):
    """A producer job whose request id already names a different job (another content, or a
    request of Tuma's API): sending it would send the other job's messages twice or drop its own."""


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
    fingerprint: str = ""  # a producer job's content (sha256 of its canonical JSON)

    @property
    def sendable(self) -> list[JobRecipient]:
        return [r for r in self.recipients if r.problem is None]

    @property
    def identity(self) -> str:
        """What names this job within its request, for its claim: an API job's first position
        (the API splits a request into consecutive runs, and cancels find a job by its start); a
        producer job's content, so that another job reusing its ids can never pass for it."""
        if self.from_api:
            return f"{self.recipients[0].index:06d}"
        return "P" + self.fingerprint[:32]


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


def canonical(document: dict) -> str:
    """A job as one string, the same whatever its key order or spacing."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def producer_request_id(document: dict) -> str:
    """The request id of a producer job that gives none: from its `idempotency_key`, or else its
    whole content, with its tenant. Unlike the SQS message id, both survive a producer's retried
    send_message and an operator's DLQ redrive, so the job is claimed, and sent, once."""
    key = document.get("idempotency_key")
    seed = f"key\x00{document['tenant_id']}\x00{key}" if key else "content\x00" + canonical(document)
    return ids.derived_request_id(seed)


def parse_job(text: str, queue_message_id: str | None = None) -> SendJob:
    """Validate a job. Its ids never derive from `queue_message_id` (a redrive changes it): a
    producer job without a request id gets producer_request_id(job)."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as problem:
        raise MalformedJob(f"not JSON: {problem}") from None
    try:
        # send_job.v1.json's validator, generated ahead of time (scripts/codegen.py): Powertools'
        # validate compiled the schema again for every job (about 7 ms of CPU each).
        schema_checks.SEND_JOB(document)
    except schema_checks.JsonSchemaValueException as problem:
        # Its message names the rule and path without echoing values (phone numbers).
        raise MalformedJob(f"does not match send_job.v1: {problem.message}") from None
    request_id = document.get("request_id") or producer_request_id(document)
    from_api = document.get("origin") == "api"
    shared_body = document.get("body")
    recipients = []
    seen: dict[tuple[str, str], int] = {}  # (number, body) -> the index of its first message, as the API's
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
        # The API refuses a body over the segment limit and rejects a repeat of the same text to
        # the same number; a producer's job gets the same checks here, per message.
        too_long = None if from_api else _too_long(body)
        index = ids.parse_message_id(message_id)[1]
        first = None if from_api or too_long else seen.setdefault((number, body), index)
        if first is not None and first != index:
            problem = f"duplicate of message {first}"
        else:
            problem = f"body {too_long}" if too_long else None
        recipients.append(JobRecipient(message_id, number, body, problem))
    if len({r.message_id for r in recipients}) != len(recipients):
        raise MalformedJob("two recipients share a message_id")
    return SendJob(tenant_id=document["tenant_id"], request_id=request_id, provider=document.get("provider"),
                   sender=document["from"], callback_url=document.get("callback_url"),
                   recipients=tuple(recipients), from_api=from_api,
                   fingerprint="" if from_api else hashlib.sha256(canonical(document).encode()).hexdigest())


@lru_cache(maxsize=1024)
def _too_long(body: str) -> str | None:
    return length_problem(measure(body))
