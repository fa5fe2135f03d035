"""The sender's writes: a producer's job registered as a request, the job's claim, the messages
each provider call is about to carry (`called` on the job item), and each message's outcome.

At-most-once sending rests on the job's conditional claim (see tuma.domain.sending), keyed on the
job's identity (tuma.domain.jobs.SendJob.identity). A message's outcome is still written only
where it moves the message forward: a `sent` that comes late (after a delivery report, or from an
invocation whose claim was taken over) never replaces `delivered` or any later status, it only
joins the history. The items go 25 to a BatchExecuteStatement of PartiQL INSERTs, which DynamoDB
refuses (DuplicateItem) where the item exists already: the condition of a conditional put, at
half the write units of a transaction's. A refused item is read and moved forward one by one (an
orphan's stands as it is); so is an item the first answer was lost for (botocore's retry finds
it, holding this very outcome, and leaves it)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from tuma.domain.ids import chunk_start, recipient_id
from tuma.domain.jobs import JobConflict, JobRecipient, SendJob
from tuma.domain.requests import encoding_letter
from tuma.domain.times import iso_millis
from tuma.domain.segments import measure
from tuma.domain.sending import BUSY, CLAIMED, DONE, Claim, Outcome
from tuma.domain.status import REJECTED, SENDING, may_move
from tuma.observability import logger
from tuma.store import history, progress
from tuma.store.table import (
    REQUEST_SK, chunk_sk, expires_at, is_conditional_failure, item_at_failure, message_pk, parse_recipient_pk, position,
    put_once, recipient_key, table)

IN_FLIGHT, RETRY, FINISHED = "in_flight", "retry", DONE  # states of a job item
FRESH = "fresh"  # the state a claim found on a job never claimed before (kept as `prior_state`)
INSERTS = 25  # BatchExecuteStatement's limit
INSERT_ATTEMPTS = 5  # tries of an INSERT DynamoDB throttled or failed inside; then the invocation fails
# The per-statement errors worth another try (BatchStatementError's codes); any other is a bug.
TRANSIENT_ERRORS = {"ProvisionedThroughputExceeded", "RequestLimitExceeded", "ThrottlingError", "InternalServerError",
                  "TransactionConflict"}
WRITERS = 16  # concurrent one-by-one writes onto the items an INSERT found existing
# What a message item says of its outcome; a later outcome replaces them all.
OUTCOME_FIELDS = ("provider", "provider_message_id", "cost", "error_code", "reason", "failover_from",
                  "failover_reason", "cost_estimated")


class MessageStore:
    """The sender's store (tuma.domain.sending.SendStore)."""

    _tallies: dict[str, dict] = {}  # claim token -> what record() adds to the batch's progress

    def register(self, job: SendJob, now: datetime) -> None:
        """Raises JobConflict when the request id already names another job."""
        pk = message_pk(job.tenant_id, job.request_id)
        expires = expires_at(now)
        request = {"pk": pk, "sk": REQUEST_SK, "kind": "producer", "request_id": job.request_id,
                   "tenant_id": job.tenant_id, **({"provider": job.provider} if job.provider else {}),
                   "from": job.sender, "fingerprint": job.fingerprint,
                   "created_at": iso_millis(now), "total": len(job.recipients),
                   # A producer's bad numbers are recorded as rejected messages, so all count as accepted.
                   "accepted": len(job.recipients), "rejected": 0, "expires_at": expires,
                   **({"callback_url": job.callback_url} if job.callback_url else {})}
        if not put_once(request):
            found = table().get_item(Key={"pk": pk, "sk": REQUEST_SK}, ConsistentRead=True).get("Item") or {}
            # A request stored before fingerprints were kept cannot be told apart: it is taken as this job.
            if found.get("kind") != "producer" or found.get("fingerprint", job.fingerprint) != job.fingerprint:
                raise JobConflict(f"request_id {job.request_id} already names another job: give each job its own "
                                  "request_id or idempotency_key")
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
            put_once({"pk": pk, "sk": chunk_sk(start), "numbers": numbers, "rejected": {}, "segments": segments,
                      "encodings": "".join(encodings), "expires_at": expires})

    def claim(self, job: SendJob, now: datetime, in_flight_grace: timedelta) -> Claim:
        token = uuid.uuid4().hex
        try:
            item = table().update_item(
                Key=_job_key(job),
                UpdateExpression=(
                    "SET prior_state = if_not_exists(#state, :fresh), #state = :in_flight, claim_token = :token, "
                    "claimed_at = :now, attempts = if_not_exists(attempts, :zero) + :one, expires_at = :expires"),
                ConditionExpression=("attribute_not_exists(#state) OR #state = :retry "
                                     "OR (#state = :in_flight AND claimed_at < :stale_before)"),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":in_flight": IN_FLIGHT, ":retry": RETRY, ":token": token, ":now": now.isoformat(),
                    ":stale_before": (now - in_flight_grace).isoformat(), ":fresh": FRESH,
                    ":zero": 0, ":one": 1, ":expires": expires_at(now)},
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")["Attributes"]
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            item = item_at_failure(problem)
            # Our own write, whose answer was lost (botocore retried it and the retry found it
            # done): the claim is ours, and the item says all the first answer would have.
            if item.get("claim_token") != token:
                return Claim(BUSY if item.get("state") == IN_FLIGHT else DONE)
        prior = item.get("prior_state", FRESH)
        claim = Claim(CLAIMED, token=token, first_attempt=prior == FRESH, taken_over=prior == IN_FLIGHT,
                      claimed_at=iso_millis(now))
        # Messages cancelled one by one before this first claim (tuma.store.cancels) are left out.
        cancelled = {int(i) for i in item.get("cancelled", ())}
        by_index = {r.index: r for r in job.sendable if r.index not in cancelled}
        # No `pending` yet: no attempt has closed, every sendable message is pending. (Not written at
        # the claim: a job of 1,000 would carry ~4 KB through every write to its item.)
        indices = item["pending"] if "pending" in item else list(by_index)
        pending = [by_index[int(i)] for i in indices if int(i) in by_index]
        # `called` is the dead holder's: our claim has named nothing yet, and a closed claim leaves none.
        called = {int(i) for i in item.get("called", ())} if claim.taken_over else set()
        claim.orphaned = [r for r in pending if r.index in called]
        claim.to_send = [r for r in pending if r.index not in called]
        return claim

    def mark_calling(self, job: SendJob, claim: Claim, recipients: list[JobRecipient]) -> bool:
        """Name the messages of the provider call about to be made, on the job item, while the
        claim is ours: one conditional write per call, none for a call whose messages this claim
        has named already (a retry after a 429/503). ADD to a set is idempotent, so a write that
        botocore retries after a lost answer finds it done and succeeds again."""
        indices = {r.index for r in recipients}
        if indices <= claim.named:
            return True
        try:
            table().update_item(
                Key=_job_key(job), UpdateExpression="ADD #called :indices", ConditionExpression="claim_token = :token",
                ExpressionAttributeNames={"#called": "called"},  # a reserved word
                ExpressionAttributeValues={":indices": indices, ":token": claim.token})
        except ClientError as problem:
            if is_conditional_failure(problem):
                logger.warning("claim taken over: no more provider calls", extra={"message_id": job.request_id})
            else:
                logger.warning("intent not recorded: the call is not made", extra={
                    "message_id": job.request_id, "reason": problem.response["Error"]["Code"]})
            return False
        except BotoCoreError as problem:  # no answer from DynamoDB at all: not recorded, so not called
            logger.warning("intent not recorded: the call is not made", extra={
                "message_id": job.request_id, "reason": type(problem).__name__})
            return False
        claim.named |= indices
        return True

    def unmark_calling(self, job: SendJob, claim: Claim, recipients: list[JobRecipient]) -> None:
        """Withdraw the names of a request that was not made, while the claim is ours: DELETE from
        a set, so a retried write finds it done. A failure leaves them named (a takeover after a
        death then calls them unknown, the safe side)."""
        indices = {r.index for r in recipients}
        try:
            table().update_item(
                Key=_job_key(job), UpdateExpression="DELETE #called :indices", ConditionExpression="claim_token = :token",
                ExpressionAttributeNames={"#called": "called"},
                ExpressionAttributeValues={":indices": indices, ":token": claim.token})
        except ClientError as problem:
            if not is_conditional_failure(problem):  # else: taken over, the names are not ours to withdraw
                logger.warning("names of a request not made left standing", extra={
                    "message_id": job.request_id, "reason": problem.response["Error"]["Code"]})
            return
        except BotoCoreError as problem:
            logger.warning("names of a request not made left standing", extra={
                "message_id": job.request_id, "reason": type(problem).__name__})
            return
        claim.named -= indices

    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Each message's outcome, where it moves the message forward (see the module's note). An
        orphan's item may exist already (its invocation died after writing it): that one stands."""
        at, expires = iso_millis(now), expires_at(now)
        orphans = {r.index for r in claim.orphaned}
        writes: dict[str, tuple[dict, bool, int]] = {}  # sk -> (item, is an orphan, index): one write per message
        for recipient, outcome in outcomes:
            item = _message_item(job, claim, recipient, outcome, at, expires)
            writes.setdefault(item["sk"], (item, recipient.index in orphans, recipient.index))
        ordered = list(writes.values())
        existing = _insert_new([item for item, _, _ in ordered])
        # An orphan's existing item stands as it is: nothing to write (a takeover after a sender
        # that died having recorded its job writes nothing more). Any other is moved one by one.
        put = {index: item["sk"] not in existing for item, orphan, index in ordered if orphan}
        one_by_one = [item for item, orphan, _ in ordered if item["sk"] in existing and not orphan]
        if one_by_one:
            with ThreadPoolExecutor(min(WRITERS, len(one_by_one))) as pool:
                list(pool.map(_write_one, one_by_one))
        self._tallies[claim.token] = progress.tally(job, outcomes, put)  # added as the claim closes

    def finish(self, job: SendJob, claim: Claim, not_taken: list[JobRecipient], reason: str, now: datetime) -> None:
        # With the batch's progress counters in the same transaction (tuma.store.progress). If our
        # claim was taken over as stale, nothing is written: its new holder records these as unknown.
        progress.close_claim(dict(
            Key=_job_key(job),
            # The claim's named calls go with it: a later claim finds `called` only after a holder died.
            UpdateExpression=("SET #state = :state, pending = :pending, finished_at = :now, last_reason = :reason "
                              "REMOVE #called"),
            ConditionExpression="claim_token = :token",
            ExpressionAttributeNames={"#state": "state", "#called": "called"},
            ExpressionAttributeValues={":state": RETRY if not_taken else FINISHED,
                                       ":pending": [r.index for r in not_taken], ":now": now.isoformat(),
                                       ":reason": reason, ":token": claim.token}),
            job.tenant_id, job.request_id, self._tallies.pop(claim.token, None))


def _job_key(job: SendJob) -> dict:
    return {"pk": message_pk(job.tenant_id, job.request_id), "sk": f"J#{job.identity}"}


def _insert_new(items: list[dict]) -> set[str]:
    """Insert each item unless one with its key exists; the sort keys of those refused (all the
    items are of one request, so the sort key names the item)."""
    client, refused, unwritten = table().meta.client, set(), 0
    for i in range(0, len(items), INSERTS):
        pending = items[i:i + INSERTS]
        for attempt in range(INSERT_ATTEMPTS):
            if attempt:
                time.sleep(0.05 * 2 ** attempt)  # throttled: back off, as AWS advises
            answers = client.batch_execute_statement(Statements=[_insert(item) for item in pending])["Responses"]
            again = []
            for item, answer in zip(pending, answers, strict=True):
                code = answer.get("Error", {}).get("Code")
                if code == "DuplicateItem":
                    refused.add(item["sk"])
                elif code in TRANSIENT_ERRORS:
                    again.append(item)
                elif code:
                    raise RuntimeError(f"DynamoDB refused an insert: {code}: {answer['Error'].get('Message')}")
            if not again:
                break
            pending = again
        else:
            unwritten += len(pending)
    if unwritten:
        # After the other batches, so only these are left to the takeover: the invocation fails,
        # SQS delivers the job again, and its new claim records them `unknown` (they were called).
        raise RuntimeError(f"DynamoDB kept failing {unwritten} inserts after {INSERT_ATTEMPTS} attempts")
    return refused


def _insert(item: dict) -> dict:
    """A PartiQL INSERT of `item`, its values as parameters, never spliced into the statement (the
    table's client serializes them with boto3's TypeSerializer, as it does every item here)."""
    names = ", ".join("'{}': ?".format(name.replace("'", "''")) for name in item)
    return {"Statement": f'INSERT INTO "{table().name}" VALUE {{{names}}}', "Parameters": list(item.values())}


def _write_one(item: dict) -> None:
    """One message's outcome onto the item its INSERT found: the item moved forward, or only its
    history extended when the existing status is as far or further on."""
    for _ in range(3):  # another writer may move the item between our read and our write
        old = table().get_item(Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True).get("Item")
        if old is None:  # gone since (only TTL deletes): new again
            if put_once(item):
                return
            continue
        if old.get("status") == item["status"]:
            return  # recorded already: by an earlier try, or by our own INSERT whose answer was lost
        if _update(item, old):
            return
    message_id = recipient_id(parse_recipient_pk(item["pk"])[1], position(item))
    logger.warning("outcome not recorded: the message kept changing under the sender",
                   extra={"status": item["status"], "message_id": message_id})


def _update(item: dict, old: dict) -> bool:
    """Move `old` to the item's outcome if that moves it forward, else add the outcome to its
    history with a note; False when the item changed under us."""
    current, length = old.get("status"), len(old.get("history") or [])
    if may_move(current, item["status"]):
        fields = {name: item[name] for name in ("status", "updated_at", *OUTCOME_FIELDS) if name in item}
        entries = item["history"]
        removed = [name for name in OUTCOME_FIELDS if name not in item and name in old]
    else:
        fields = {}
        # Whole: the outcome's provider id and cost are not the item's.
        note = {**history.shown(item)["history"][-1],
                "note": f"late: the message is already {current}; status unchanged"}
        if (old.get("history") or [])[-1:] == [note]:
            return True  # noted already: by an earlier try of this write whose answer was lost
        entries = [note]
        removed = []
    names = {f"#f{i}": name for i, name in enumerate([*fields, *removed])}
    values = {f":f{i}": value for i, value in enumerate(fields.values())}
    assignments = "".join(f", #f{i} = :f{i}" for i in range(len(fields)))
    removal = (" REMOVE " + ", ".join(f"#f{len(fields) + i}" for i in range(len(removed)))) if removed else ""
    try:
        table().update_item(
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression=f"SET history = list_append(if_not_exists(history, :none), :entries){assignments}{removal}",
            # The history as read, too: botocore sends a write again when its answer is lost, and
            # a late note (no status change) would otherwise be appended twice.
            ConditionExpression=("#s = :current AND "
                                 "(attribute_not_exists(history) OR size(history) = :length)"),
            ExpressionAttributeNames={"#s": "status", **names},
            ExpressionAttributeValues={":entries": entries, ":none": [], ":current": current, ":length": length,
                                       **values})
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return False
    if not fields:
        logger.warning("late outcome kept in the history only", extra={"status": item["status"], "current": current})
    return True


def _message_item(job: SendJob, claim: Claim, recipient: JobRecipient, outcome: Outcome, at: str, expires: int) -> dict:
    by = {"provider": outcome.provider} if outcome.provider else {}
    entry = {"status": outcome.status, "at": at, **by}
    # No message_id, number or created_at: the key, the request's chunk and the first history entry
    # say them (storage is priced for the whole retention: tuma.store.history).
    item = {**recipient_key(job.tenant_id, job.request_id, recipient.index),
            "status": outcome.status, **by, "updated_at": at, "expires_at": expires}
    for name in ("provider_message_id", "cost", "error_code", "reason"):
        if getattr(outcome, name):
            entry[name] = item[name] = getattr(outcome, name)
    for name in ("failover_from", "failover_reason", "cost_estimated"):
        if getattr(outcome, name):
            item[name] = getattr(outcome, name)
    was_tried = outcome.status not in (REJECTED,) and recipient.index not in {r.index for r in claim.orphaned}
    tried = []
    if was_tried and outcome.failover_from:
        # Which provider was tried first, why it did not send, and which one did.
        tried += [{"status": SENDING, "at": claim.claimed_at, "provider": outcome.failover_from},
                  {"status": SENDING, "at": at, **by, "reason": f"failover: {outcome.failover_reason}"}]
    elif was_tried:
        tried.append({"status": SENDING, "at": claim.claimed_at, **by})
    item["history"] = tried + [history.outcome_entry(entry)]
    if job.callback_url:
        item["callback_url"] = job.callback_url
    return item
