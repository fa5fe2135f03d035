"""Messages in DynamoDB: the request as accepted (one item, plus one per CHUNK_SIZE numbers), and
each message's status with its history once the sender touches it.

Every status write is conditional on the status machine (tuma.domain.status): a write that would
move a message back only appends to its history. DynamoDB has no conditional batch write, so the
per-message writes of a job run concurrently instead (TransactWriteItems would be conditional but
costs twice the write units and fails whole on one redelivered message)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.requests import CHUNK_SIZE, AcceptedRequest, iso_millis
from tuma.domain.sending import Claims, Outcome
from tuma.domain.status import SENDING, earlier_than
from tuma.store.table import REQUEST_SK, RETENTION_DAYS, chunk_sk, message_pk, recipient_sk, table

IN_FLIGHT, NOT_TAKEN, DONE = "in_flight", "not_taken", "done"
_WRITERS = 16  # concurrent single-item writes per job


def _expires_at(moment: datetime) -> int:
    return int((moment + timedelta(days=RETENTION_DAYS)).timestamp())


def _is_conditional_failure(problem: ClientError) -> bool:
    return problem.response["Error"]["Code"] == "ConditionalCheckFailedException"


def chunk_start(index: int) -> int:
    return (index - 1) // CHUNK_SIZE * CHUNK_SIZE + 1


# --- accepting -----------------------------------------------------------------------------

def put_request(accepted: AcceptedRequest, kind: str, now: datetime) -> None:
    """The request item and its chunk items: one BatchWriteItem per 25 items."""
    pk = message_pk(accepted.tenant_id, accepted.request_id)
    expires = _expires_at(now)
    request = {
        "pk": pk, "sk": REQUEST_SK, "kind": kind, "request_id": accepted.request_id,
        "tenant_id": accepted.tenant_id, "provider": accepted.provider, "from": accepted.sender,
        "created_at": accepted.created_at, "total": len(accepted.entries), "accepted": len(accepted.queued),
        "rejected": len(accepted.rejected), "expires_at": expires,
        **({"callback_url": accepted.callback_url} if accepted.callback_url else {})}
    chunks = [{"pk": pk, "sk": chunk_sk(c.start), "numbers": c.numbers, "rejected": c.rejected,
               "expires_at": expires} for c in accepted.chunks()]
    _batch_write([request, *chunks])


def _batch_write(items: list[dict]) -> None:
    client = table().meta.client
    for i in range(0, len(items), 25):
        pending = {table().name: [{"PutRequest": {"Item": item}} for item in items[i:i + 25]]}
        for attempt in range(8):
            unprocessed = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not unprocessed:
                break
            pending = unprocessed
            time.sleep(0.05 * 2 ** attempt)  # throttled: back off, as AWS advises
        else:
            raise RuntimeError("DynamoDB kept items unprocessed after 8 attempts")


# --- reading -------------------------------------------------------------------------------

def get_request(tenant_id: str, request_id: str) -> tuple[dict | None, list[dict], dict[int, dict]]:
    """The request item, its chunk items and its message items by index: one paged query."""
    items, start = [], None
    while True:
        page = table().query(KeyConditionExpression=Key("pk").eq(message_pk(tenant_id, request_id)),
                             ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    request = next((i for i in items if i["sk"] == REQUEST_SK), None)
    chunks = [i for i in items if i["sk"].startswith("C#")]
    messages = {int(i["sk"][2:]): i for i in items if i["sk"].startswith("R#")}
    return request, chunks, messages


def get_message(tenant_id: str, request_id: str, index: int) -> tuple[dict | None, dict | None, dict | None]:
    """The request item, the chunk holding position `index`, and the message item: one BatchGetItem."""
    pk = message_pk(tenant_id, request_id)
    keys = {REQUEST_SK: None, chunk_sk(chunk_start(index)): None, recipient_sk(index): None}
    answer = table().meta.client.batch_get_item(RequestItems={table().name: {
        "Keys": [{"pk": pk, "sk": sk} for sk in keys], "ConsistentRead": True}})
    for item in answer["Responses"].get(table().name, []):
        keys[item["sk"]] = item
    return tuple(keys.values())


def get_statuses(tenant_id: str, request_id: str) -> tuple[dict | None, list[str]]:
    """The request item and the status of every message the sender has touched."""
    pk = message_pk(tenant_id, request_id)
    request = table().get_item(Key={"pk": pk, "sk": REQUEST_SK}, ConsistentRead=True).get("Item")
    statuses, start = [], None
    while request:
        page = table().query(KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with("R#"),
                             ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"},
                             ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
        statuses += [i["status"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return request, statuses


# --- sending -------------------------------------------------------------------------------

class MessageStore:
    """The sender's store (tuma.domain.sending.SendStore)."""

    def register(self, job: SendJob, now: datetime) -> None:
        pk = message_pk(job.tenant_id, job.request_id)
        expires = _expires_at(now)
        items = [{"pk": pk, "sk": REQUEST_SK, "kind": "producer", "request_id": job.request_id,
                  "tenant_id": job.tenant_id, "provider": job.provider, "from": job.sender,
                  "created_at": iso_millis(now), "total": len(job.recipients),
                  # A producer's bad numbers are recorded as rejected messages, so all count as accepted.
                  "accepted": len(job.recipients), "rejected": 0, "expires_at": expires,
                  **({"callback_url": job.callback_url} if job.callback_url else {})}]
        by_chunk: dict[int, list[JobRecipient]] = {}
        for recipient in job.recipients:
            by_chunk.setdefault(chunk_start(recipient.index), []).append(recipient)
        for start, members in by_chunk.items():
            numbers = [""] * (max(r.index for r in members) - start + 1)
            for r in members:
                numbers[r.index - start] = r.number
            items.append({"pk": pk, "sk": chunk_sk(start), "numbers": numbers, "expires_at": expires,
                          "rejected": {str(r.index): r.problem for r in members if r.problem}})
        for item in items:
            try:  # once: a redelivery finds them and leaves them as they are
                table().put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as problem:
                if not _is_conditional_failure(problem):
                    raise

    def claim(self, job: SendJob, recipients: list[JobRecipient], now: datetime) -> Claims:
        claims = Claims()
        with ThreadPoolExecutor(_WRITERS) as pool:
            for recipient, (claimed, old) in zip(recipients, pool.map(lambda r: self._claim(job, r, now), recipients)):
                if claimed:
                    claims.claimed.append(recipient)
                elif old.get("attempt_state") == IN_FLIGHT and old.get("status") == SENDING:
                    claims.in_flight.append((recipient, datetime.fromisoformat(old["claimed_at"])))
                else:
                    claims.settled.append(recipient)
        return claims

    def _claim(self, job: SendJob, recipient: JobRecipient, now: datetime) -> tuple[bool, dict]:
        at = iso_millis(now)
        try:
            table().update_item(
                Key={"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)},
                UpdateExpression=(
                    "SET #s = :sending, attempt_state = :in_flight, claimed_at = :claimed_at, "
                    "attempts = if_not_exists(attempts, :zero) + :one, message_id = :id, #n = :number, "
                    "provider = :provider, created_at = if_not_exists(created_at, :at), updated_at = :at, "
                    "expires_at = :expires, history = list_append(if_not_exists(history, :empty), :entry)"),
                ConditionExpression="attribute_not_exists(#s) OR (#s = :sending AND attempt_state = :not_taken)",
                ExpressionAttributeNames={"#s": "status", "#n": "number"},
                ExpressionAttributeValues={
                    ":sending": SENDING, ":in_flight": IN_FLIGHT, ":not_taken": NOT_TAKEN,
                    ":claimed_at": now.isoformat(), ":zero": 0, ":one": 1, ":id": recipient.message_id,
                    ":number": recipient.number, ":provider": job.provider, ":at": at,
                    ":expires": _expires_at(now), ":empty": [],
                    ":entry": [{"status": SENDING, "at": at, "provider": job.provider}]},
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return True, {}
        except ClientError as problem:
            if not _is_conditional_failure(problem):
                raise
            return False, problem.response.get("Item") or {}

    def release(self, job: SendJob, recipients: list[JobRecipient], now: datetime, reason: str) -> None:
        at = iso_millis(now)
        entry = [{"status": SENDING, "at": at, "note": f"not taken by {job.provider}: {reason}; will retry"}]

        def release_one(recipient: JobRecipient) -> None:
            try:
                table().update_item(
                    Key={"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)},
                    UpdateExpression="SET attempt_state = :not_taken, updated_at = :at, history = list_append(history, :entry)",
                    ConditionExpression="attempt_state = :in_flight",
                    ExpressionAttributeValues={":not_taken": NOT_TAKEN, ":in_flight": IN_FLIGHT, ":at": at, ":entry": entry})
            except ClientError as problem:
                if not _is_conditional_failure(problem):
                    raise

        with ThreadPoolExecutor(_WRITERS) as pool:
            list(pool.map(release_one, recipients))

    def record(self, job: SendJob, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        with ThreadPoolExecutor(_WRITERS) as pool:
            list(pool.map(lambda pair: self._record(job, *pair, now), outcomes))

    def _record(self, job: SendJob, recipient: JobRecipient, outcome: Outcome, now: datetime) -> None:
        at = iso_millis(now)
        entry = {"status": outcome.status, "at": at, "provider": outcome.provider}
        fields = {"provider": outcome.provider, "attempt_state": DONE, "updated_at": at,
                  "message_id": recipient.message_id, "number": recipient.number}
        for name in ("provider_message_id", "cost", "error_code", "reason"):
            if getattr(outcome, name):
                entry[name] = fields[name] = getattr(outcome, name)
        names = {"#s": "status", **{f"#f{i}": name for i, name in enumerate(fields)}}
        values = {":status": outcome.status, ":empty": [], ":entry": [entry],
                  **{f":f{i}": value for i, value in enumerate(fields.values())}}
        assignments = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
        allowed = earlier_than(outcome.status)
        key = {"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)}
        try:
            table().update_item(
                Key=key,
                UpdateExpression=f"SET #s = :status, {assignments}, history = list_append(if_not_exists(history, :empty), :entry)",
                ConditionExpression="attribute_not_exists(#s) OR #s IN ("
                                    + ", ".join(f":allowed{i}" for i in range(len(allowed))) + ")",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, **{f":allowed{i}": s for i, s in enumerate(allowed)}})
            return
        except ClientError as problem:
            if not _is_conditional_failure(problem):
                raise
        # Already further on (e.g. a delivery report came first): keep the facts, not the status;
        # and the same outcome recorded again (a redelivered job) changes nothing at all.
        entry["note"] = "recorded late; status unchanged"
        try:
            table().update_item(
                Key=key,
                UpdateExpression=f"SET {assignments}, history = list_append(if_not_exists(history, :empty), :entry)",
                ConditionExpression="#s <> :status",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError as problem:
            if not _is_conditional_failure(problem):
                raise
