"""Messages in DynamoDB as the API writes and reads them: the request as accepted (one item, plus
one per CHUNK_SIZE numbers) and the status of each message (the sender's writes are in
tuma.store.sending)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key

from tuma.domain.ids import chunk_start
from tuma.domain.records import Chunk
from tuma.domain.scheduling import job_start
from tuma.domain.times import parse_iso
from tuma.store import history
from tuma.store.schedules import held_job_item
from tuma.store.table import (REQUEST_SK, batch_write, chunk_sk, expires_at, is_chunk, message_pk, position,
                              query_all, recipient_items_under, recipient_key, recipient_pks, table)

if TYPE_CHECKING:
    from tuma.domain.requests import AcceptedRequest


# --- accepting -----------------------------------------------------------------------------

def put_request(accepted: "AcceptedRequest", kind: str, now: datetime, jobs: list[dict] = (),
                hold: bool = False) -> None:
    """The chunk items (one BatchWriteItem per 25), then the request item. The request keeps
    where its `jobs` start (so that its messages can be cancelled), and a request to `hold` for
    its scheduled time keeps the jobs themselves (tuma.store.schedules)."""
    pk = message_pk(accepted.tenant_id, accepted.request_id)
    expires = expiry_of(accepted, now)
    request = {
        "pk": pk, "sk": REQUEST_SK, "kind": kind, "request_id": accepted.request_id,
        "tenant_id": accepted.tenant_id, "from": accepted.sender,
        **({"provider": accepted.provider} if accepted.provider else {}),
        "created_at": accepted.created_at, "total": len(accepted.entries), "accepted": len(accepted.queued),
        "rejected": len(accepted.rejected), "expires_at": expires,
        # Segments of the sendable messages: a batch's estimate without reading its chunks (issue 12).
        "segments": accepted.segments,
        **({"callback_url": accepted.callback_url} if accepted.callback_url else {}),
        **({"scheduled_at": accepted.scheduled_at} if accepted.scheduled_at else {}),
        **({"job_starts": [job_start(j) for j in jobs]} if jobs else {})}
    chunks = [{"pk": pk, "sk": chunk_sk(c.start), "numbers": c.numbers, "rejected": c.rejected,
               "segments": c.segments, "encodings": c.encodings, "expires_at": expires} for c in accepted.chunks()]
    held = [held_job_item(pk, job, expires) for job in jobs] if hold else []
    batch_write([*chunks, *held])
    # Last, and alone: a request item that exists has all its chunks, so a retry that finds it
    # (tuma.accepting) only has to finish the queueing.
    table().put_item(Item=request)


def expiry_of(accepted: "AcceptedRequest", now: datetime | None = None) -> int:
    """When a request's items expire (epoch seconds). Retention counts from when the messages go
    out: a send held 30 days must outlive a shorter RetentionDays."""
    now = now or parse_iso(accepted.created_at)
    return expires_at(max(now, parse_iso(accepted.scheduled_at)) if accepted.scheduled_at else now)


def mark_queued(tenant_id: str, request_id: str, job_starts: list[int]) -> None:
    """Record on the request item that the jobs starting at `job_starts` are on the queue."""
    if job_starts:
        table().update_item(Key={"pk": message_pk(tenant_id, request_id), "sk": REQUEST_SK},
                            UpdateExpression="ADD queued_jobs :starts",
                            ExpressionAttributeValues={":starts": set(job_starts)})


# --- reading -------------------------------------------------------------------------------

def chunk_record(item: dict) -> Chunk:
    """A chunk item as the domain reads it: its start position from its key, DynamoDB's numbers
    (Decimal) as ints, and an attribute a projection left out as empty."""
    return Chunk(start=position(item), numbers=list(item.get("numbers") or []),
                 rejected=dict(item.get("rejected") or {}), segments=[int(n) for n in item.get("segments") or []],
                 encodings=item.get("encodings") or "")


def request_item(tenant_id: str, request_id: str) -> dict | None:
    """The request item alone."""
    return table().get_item(Key={"pk": message_pk(tenant_id, request_id), "sk": REQUEST_SK},
                            ConsistentRead=True).get("Item")


def _query_each(conditions: list, **query) -> list[list[dict]]:
    """Every item each key condition finds (a paged Query each, `query` added to it), queried
    concurrently: a request's message items are under SHARDS partition keys (tuma.store.table)."""
    with ThreadPoolExecutor(len(conditions)) as pool:
        return list(pool.map(lambda condition: list(query_all(
            KeyConditionExpression=condition, ConsistentRead=True, **query)), conditions))


def _shards(tenant_id: str, request_id: str, positions: Iterable[int] | None = None) -> list:
    return [recipient_items_under(pk) for pk in recipient_pks(tenant_id, request_id, positions)]


def get_request(tenant_id: str, request_id: str) -> tuple[dict | None, list[Chunk], dict[int, dict]]:
    """The request item, its chunks and its message items by index: a paged query for the request's
    own items, then one per shard its chunks' positions are in, concurrently. (Two rounds, not one:
    a send to a few numbers reads a few shards, not all SHARDS.)"""
    own = list(query_all(KeyConditionExpression=Key("pk").eq(message_pk(tenant_id, request_id)), ConsistentRead=True))
    request = next((i for i in own if i["sk"] == REQUEST_SK), None)
    chunks = [chunk_record(i) for i in own if is_chunk(i)]
    positions = [index for chunk in chunks for index in range(chunk.start, chunk.start + len(chunk.numbers))]
    if request is None or not positions:
        return request, chunks, {}
    shards = _query_each(_shards(tenant_id, request_id, positions))
    messages = {position(i): history.shown(i) for items in shards for i in items}
    return request, chunks, messages


def get_message(tenant_id: str, request_id: str, index: int) -> tuple[dict | None, Chunk | None, dict | None]:
    """The request item, the chunk holding position `index`, and the message item: one BatchGetItem."""
    pk = message_pk(tenant_id, request_id)
    keys = [{"pk": pk, "sk": REQUEST_SK}, {"pk": pk, "sk": chunk_sk(chunk_start(index))},
            recipient_key(tenant_id, request_id, index)]
    found: dict[str, dict] = {}  # by sort key: the three differ
    answer = table().meta.client.batch_get_item(RequestItems={table().name: {"Keys": keys, "ConsistentRead": True}})
    for item in answer["Responses"].get(table().name, []):
        found[item["sk"]] = item
    request, chunk, message = (found.get(key["sk"]) for key in keys)
    return request, chunk_record(chunk) if chunk else None, history.shown(message)


def get_statuses(tenant_id: str, request_id: str) -> tuple[dict | None, dict[int, dict], list[Chunk]]:
    """The request item; the status and cost of every message the sender has touched, by index;
    and the chunks' `segments` and `rejected` (for the cost of the rest; their `numbers` are not
    read). A paged query over the chunk items, and one per shard of the message items, projected
    to those attributes."""
    request = request_item(tenant_id, request_id)
    if request is None:
        return request, {}, []
    chunks_only = Key("pk").eq(message_pk(tenant_id, request_id)) & Key("sk").begins_with("C#")
    chunk_items, *shards = _query_each(
        [chunks_only, *_shards(tenant_id, request_id)],
        ProjectionExpression="sk, #s, cost, #g, rejected", ExpressionAttributeNames={"#s": "status", "#g": "segments"})
    chunks = [chunk_record(item) for item in chunk_items]
    touched = {position(item): item for items in shards for item in items}
    return request, touched, chunks
