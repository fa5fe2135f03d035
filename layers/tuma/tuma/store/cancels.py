"""Cancelling in DynamoDB: conditional writes on job items, so that a cancel and the sender's claim
(tuma.store.sending.MessageStore.claim) can never both win, then `cancelled` message items.

A job item the sender has not claimed has no `state`; one whose last attempt left messages no
provider took is in `retry`, with those positions `pending`:
- cancelling a whole request sets each such job's `state` to `cancelled` (the claim refuses it);
  a job in `retry` then has only its pending messages cancelled, the rest were sent;
- cancelling one message adds its position to the job's `cancelled` number set (the claim leaves
  those positions out of what it sends), in `retry` only for a pending position.
Both succeed only while the sender does not hold the job (no `state`, or `retry`): a claim in
flight or a finished job makes them fail."""

from __future__ import annotations

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tuma.domain.status import CANCELLED
from tuma.store import progress
from tuma.store.table import (
    REQUEST_SK, TTL_IF_ABSENT, batch_write, is_conditional_failure, item_at_failure, job_sk, message_pk, put_once,
    query_all, recipient_key, table)

JOB_CANCELLED = "cancelled"  # a job item's state, beside tuma.store.sending's in_flight | retry | done
JOB_RETRY = "retry"


def _job_key(tenant_id: str, request_id: str, start: int) -> dict:
    return {"pk": message_pk(tenant_id, request_id), "sk": job_sk(start)}


def cancel_job(tenant_id: str, request_id: str, start: int, at: str, expires: int) -> tuple[bool, dict]:
    """(True, the item before) if the job was cancelled now, else (False, the item found)."""
    try:
        old = table().update_item(
            Key=_job_key(tenant_id, request_id, start),
            UpdateExpression="SET #state = :cancelled, cancelled_at = :at, " + TTL_IF_ABSENT,
            ConditionExpression="attribute_not_exists(#state) OR #state = :retry",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":cancelled": JOB_CANCELLED, ":at": at, ":expires": expires,
                                       ":retry": JOB_RETRY},
            ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return False, item_at_failure(problem)
    return True, old.get("Attributes") or {}


def cancel_in_job(tenant_id: str, request_id: str, start: int, index: int, expires: int) -> tuple[bool, dict]:
    """(True, {}) if message `index` of the job was cancelled now, else (False, the item found)."""
    try:
        table().update_item(
            Key=_job_key(tenant_id, request_id, start),
            UpdateExpression="ADD cancelled :index SET " + TTL_IF_ABSENT,
            ConditionExpression=("(attribute_not_exists(#state) OR (#state = :retry AND contains(pending, :position))) "
                                 "AND NOT contains(cancelled, :position)"),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":index": {index}, ":position": index, ":expires": expires,
                                       ":retry": JOB_RETRY},
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return False, item_at_failure(problem)
    return True, {}


def cancelled_positions(job_item: dict) -> set[int]:
    return {int(i) for i in job_item.get("cancelled", ())}


def unsent_positions(job_item: dict, members: list[int]) -> list[int]:
    """The positions of a job this cancel stops: all its members, or, for a job the sender had
    tried (it kept `pending`), only those no provider took; less any cancelled one by one."""
    skipped = cancelled_positions(job_item)
    candidates = [int(i) for i in job_item["pending"]] if "pending" in job_item else members
    return [i for i in candidates if i not in skipped]


def _message_item(tenant_id: str, request_id: str, index: int, at: str, expires: int) -> dict:
    return {**recipient_key(tenant_id, request_id, index), "status": CANCELLED, "updated_at": at,
            "history": [{"status": CANCELLED, "at": at}], "expires_at": expires}


def put_cancelled_messages(tenant_id: str, request_id: str, indices: list[int], at: str, expires: int) -> None:
    """The `cancelled` items of messages whose job this cancel won: no condition is needed, the
    sender can no longer claim them."""
    batch_write([_message_item(tenant_id, request_id, i, at, expires) for i in indices])


def put_cancelled_message(tenant_id: str, request_id: str, index: int, at: str, expires: int) -> bool:
    """One message's `cancelled` item, unless it has an item already (False)."""
    put = put_once(_message_item(tenant_id, request_id, index, at, expires))
    if put:
        progress.note_cancellation(tenant_id, request_id)  # (issue 12) batch counters skip cancels
    return put


def mark_request_cancelled(tenant_id: str, request_id: str, at: str) -> None:
    table().update_item(Key={"pk": message_pk(tenant_id, request_id), "sk": REQUEST_SK},
                        UpdateExpression="SET cancelled_at = if_not_exists(cancelled_at, :at)",
                        ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":at": at})


def rejected_positions(tenant_id: str, request_id: str) -> set[int]:
    """The positions rejected when the request was accepted (they have no job)."""
    chunks = query_all(
        KeyConditionExpression=Key("pk").eq(message_pk(tenant_id, request_id)) & Key("sk").begins_with("C#"),
        ProjectionExpression="rejected", ConsistentRead=True)
    return {int(i) for item in chunks for i in (item.get("rejected") or {})}
