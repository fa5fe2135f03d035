"""The sender's writes: a producer's job registered as a request, the job's claim, and each
message's outcome.

Exactly-once sending rests on the job's conditional claim (see tuma.domain.sending), so message
items can be written in batches (BatchWriteItem cannot be conditional); later changes to a
message (delivery reports) are conditional writes on its own item."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from tuma.domain.ids import chunk_start
from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.requests import encoding_letter
from tuma.domain.times import iso_millis
from tuma.domain.segments import measure
from tuma.domain.sending import BUSY, CLAIMED, DONE, Claim, Outcome
from tuma.domain.status import REJECTED, SENDING
from tuma.store import progress
from tuma.store.table import (
    REQUEST_SK, batch_write, chunk_sk, expires_at, is_conditional_failure, item_at_failure, job_sk, message_pk, put_once,
    recipient_sk, table)

IN_FLIGHT, RETRY, FINISHED = "in_flight", "retry", DONE  # states of a job item


class MessageStore:
    """The sender's store (tuma.domain.sending.SendStore)."""

    _tallies: dict[str, dict] = {}  # claim token -> what record() adds to the batch's progress

    def register(self, job: SendJob, now: datetime) -> None:
        pk = message_pk(job.tenant_id, job.request_id)
        expires = expires_at(now)
        items = [{"pk": pk, "sk": REQUEST_SK, "kind": "producer", "request_id": job.request_id,
                  "tenant_id": job.tenant_id, **({"provider": job.provider} if job.provider else {}),
                  "from": job.sender,
                  "created_at": iso_millis(now), "total": len(job.recipients),
                  # A producer's bad numbers are recorded as rejected messages, so all count as accepted.
                  "accepted": len(job.recipients), "rejected": 0, "expires_at": expires,
                  **({"callback_url": job.callback_url} if job.callback_url else {})}]
        by_chunk: dict[int, list[JobRecipient]] = {}
        for recipient in job.recipients:
            by_chunk.setdefault(chunk_start(recipient.index), []).append(recipient)
        for start, members in by_chunk.items():
            numbers = [""] * (max(r.index for r in members) - start + 1)
            segments, encodings = [0] * len(numbers), ["-"] * len(numbers)  # as tuma.domain.requests.Chunk
            for r in members:
                numbers[r.index - start] = r.number
                body = measure(r.body)
                segments[r.index - start], encodings[r.index - start] = body.segments, encoding_letter(body)
            items.append({"pk": pk, "sk": chunk_sk(start), "numbers": numbers, "rejected": {}, "segments": segments,
                          "encodings": "".join(encodings), "expires_at": expires})
        for item in items:
            put_once(item)

    def claim(self, job: SendJob, now: datetime, in_flight_grace: timedelta) -> Claim:
        token = uuid.uuid4().hex
        try:
            old = table().update_item(
                Key=_job_key(job),
                UpdateExpression=(
                    "SET #state = :in_flight, claim_token = :token, claimed_at = :now, "
                    "attempts = if_not_exists(attempts, :zero) + :one, pending = if_not_exists(pending, :all), "
                    "expires_at = :expires"),
                ConditionExpression=("attribute_not_exists(#state) OR #state = :retry "
                                     "OR (#state = :in_flight AND claimed_at < :stale_before)"),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":in_flight": IN_FLIGHT, ":retry": RETRY, ":token": token, ":now": now.isoformat(),
                    ":stale_before": (now - in_flight_grace).isoformat(),
                    ":zero": 0, ":one": 1, ":all": [r.index for r in job.sendable], ":expires": expires_at(now)},
                ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD").get("Attributes") or {}
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            return Claim(BUSY if item_at_failure(problem).get("state") == IN_FLIGHT else DONE)
        claim = Claim(CLAIMED, token=token, first_attempt="state" not in old, claimed_at=iso_millis(now))
        # Messages cancelled one by one before this first claim (tuma.store.cancels) are left out.
        cancelled = {int(i) for i in old.get("cancelled", ())}
        by_index = {r.index: r for r in job.sendable if r.index not in cancelled}
        pending = [by_index[int(i)] for i in old.get("pending", []) if int(i) in by_index]
        if old.get("state") == IN_FLIGHT:
            claim.orphaned = pending
        elif old.get("state") == RETRY:
            claim.to_send = pending
        else:
            claim.to_send = list(by_index.values())
        return claim

    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """New message items in batches. No conditions are needed: the claim makes this invocation
        the only writer of these messages, and delivery reports only touch a message after its
        item exists. An orphan's item may exist already (its invocation died after writing it),
        so those are written one by one, only if absent."""
        at, expires = iso_millis(now), expires_at(now)
        items = [_message_item(job, claim, recipient, outcome, at, expires) for recipient, outcome in outcomes]
        orphans = {r.index for r in claim.orphaned}
        batch_write([item for (r, _), item in zip(outcomes, items) if r.index not in orphans])
        put = {}
        for (recipient, _), item in zip(outcomes, items):
            if recipient.index in orphans:
                put[recipient.index] = put_once(item)
        self._tallies[claim.token] = progress.tally(job, outcomes, put)  # added as the claim closes

    def finish(self, job: SendJob, claim: Claim, not_taken: list[JobRecipient], reason: str, now: datetime) -> None:
        # With the batch's progress counters in the same transaction (tuma.store.progress). If our
        # claim was taken over as stale, nothing is written: its new holder records these as unknown.
        progress.close_claim(dict(
            Key=_job_key(job),
            UpdateExpression="SET #state = :state, pending = :pending, finished_at = :now, last_reason = :reason",
            ConditionExpression="claim_token = :token",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": RETRY if not_taken else FINISHED,
                                       ":pending": [r.index for r in not_taken], ":now": now.isoformat(),
                                       ":reason": reason, ":token": claim.token}),
            job.tenant_id, job.request_id, self._tallies.pop(claim.token, None))


def _job_key(job: SendJob) -> dict:
    return {"pk": message_pk(job.tenant_id, job.request_id), "sk": job_sk(job.recipients[0].index)}


def _message_item(job: SendJob, claim: Claim, recipient: JobRecipient, outcome: Outcome, at: str, expires: int) -> dict:
    by = {"provider": outcome.provider} if outcome.provider else {}
    entry = {"status": outcome.status, "at": at, **by}
    item = {"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index),
            "message_id": recipient.message_id, "number": recipient.number, "status": outcome.status,
            **by, "created_at": claim.claimed_at or at, "updated_at": at, "expires_at": expires}
    for name in ("provider_message_id", "cost", "error_code", "reason"):
        if getattr(outcome, name):
            entry[name] = item[name] = getattr(outcome, name)
    for name in ("failover_from", "failover_reason", "cost_estimated"):
        if getattr(outcome, name):
            item[name] = getattr(outcome, name)
    tried = outcome.status not in (REJECTED,) and recipient.index not in {r.index for r in claim.orphaned}
    history = []
    if tried and outcome.failover_from:
        # Which provider was tried first, why it did not send, and which one did.
        history += [{"status": SENDING, "at": claim.claimed_at, "provider": outcome.failover_from},
                    {"status": SENDING, "at": at, **by, "reason": f"failover: {outcome.failover_reason}"}]
    elif tried:
        history.append({"status": SENDING, "at": claim.claimed_at, **by})
    item["history"] = history + [entry]
    if job.callback_url:
        item["callback_url"] = job.callback_url
    return item
