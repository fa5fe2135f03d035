"""A tenant's opt-out list: one item per suppressed number, in the tenant's own partition.

  T#<tenant>#S / N#<E.164>    a suppressed number: reason, created_at (no TTL: an opt-out lasts)

A send checks its numbers with BatchGetItem, 100 keys a call (DynamoDB's bound), keys only: a
10,000-recipient bulk is 100 calls, made 8 at a time, and costs 5,000 read request units
(0.5 per eventually consistent read of an item under 4 KB, found or not), about USD 0.0006 on
demand. The list itself is never scanned, so its size does not matter to a send."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tuma.store.table import table

BATCH_GET_MAX = 100  # keys per BatchGetItem
PARALLEL_GETS = 8


def _pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#S"


def _key(tenant_id: str, number: str) -> dict:
    return {"pk": _pk(tenant_id), "sk": f"N#{number}"}


def _record(item: dict) -> dict:
    return {"number": item["sk"][2:], "reason": item.get("reason"), "created_at": item["created_at"]}


def put(tenant_id: str, number: str, reason: str | None, created_at: str) -> dict:
    item = {**_key(tenant_id, number), "kind": "suppression", "created_at": created_at}
    if reason:
        item["reason"] = reason
    table().put_item(Item=item)
    return _record(item)


def delete(tenant_id: str, number: str) -> bool:
    """Whether the number was on the list."""
    return "Attributes" in table().delete_item(Key=_key(tenant_id, number), ReturnValues="ALL_OLD")


def get(tenant_id: str, number: str) -> dict | None:
    item = table().get_item(Key=_key(tenant_id, number)).get("Item")
    return _record(item) if item else None


def page(tenant_id: str, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """Up to `limit` suppressions in number order after `cursor`, and the cursor of the next page
    (None: no more). Raises ValueError for a cursor this function did not make."""
    query = {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :n)",
             "ExpressionAttributeValues": {":pk": _pk(tenant_id), ":n": "N#"}, "Limit": limit}
    if cursor:
        query["ExclusiveStartKey"] = _key(tenant_id, _decode(cursor))
    answer = table().query(**query)
    last = answer.get("LastEvaluatedKey")
    return [_record(item) for item in answer["Items"]], (_encode(last["sk"][2:]) if last else None)


def _encode(number: str) -> str:
    return base64.urlsafe_b64encode(number.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor") from None
    if not number.startswith("+") or not (number[1:].isascii() and number[1:].isdigit()):
        raise ValueError("not a cursor")
    return number


def suppressed(tenant_id: str, numbers: Iterable[str]) -> set[str]:
    """Which of `numbers` (E.164) are on the tenant's list."""
    unique = sorted(set(numbers))
    groups = [unique[i:i + BATCH_GET_MAX] for i in range(0, len(unique), BATCH_GET_MAX)]
    if len(groups) <= 1:
        return _batch_get(tenant_id, groups[0]) if groups else set()
    with ThreadPoolExecutor(PARALLEL_GETS) as pool:
        return set().union(*pool.map(lambda group: _batch_get(tenant_id, group), groups))


def _batch_get(tenant_id: str, numbers: list[str]) -> set[str]:
    client, name = table().meta.client, table().name
    # The resource's client takes and gives plain values; only the key is projected.
    pending = {name: {"Keys": [_key(tenant_id, n) for n in numbers], "ProjectionExpression": "sk"}}
    found: set[str] = set()
    for attempt in range(8):
        answer = client.batch_get_item(RequestItems=pending)
        found |= {item["sk"][2:] for item in answer["Responses"].get(name, [])}
        pending = answer.get("UnprocessedKeys") or {}
        if not pending:
            return found
        time.sleep(0.05 * 2 ** attempt)  # throttled: back off, as AWS advises
    raise RuntimeError("DynamoDB kept keys unprocessed after 8 attempts")
