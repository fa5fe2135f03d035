"""The one DynamoDB table (single-table design). Keys:

  T#<tenant>#M#<request id> / REQ        a request (single send, bulk batch, producer job): sender,
                                         provider, counts
  T#<tenant>#M#<request id> / C#<n>      the numbers at positions n… (CHUNK_SIZE of them) as accepted
  T#<tenant>#M#<request id> / J#<n>      the send job whose first message is n: its claim and progress
  T#<tenant>#M#<request id>#<n mod SHARDS> / R#<n>
                                         message n once the sender has an outcome: status, history
                                         (tuma.store.history: entries share the item's fields)
  T#<tenant>#M#<request id>#<shard> / PROGRESS
                                         a batch's counters for that shard (tuma.store.progress)
  KEY#<sha256 of api key>   / KEY        an API key's tenant
  PROVIDER#<name>           / BALANCE    a provider's cached balance (tuma.store.balances)
  PROVIDER#<name>           / CIRCUIT    a provider's circuit breaker (tuma.store.circuit)

The tenant is part of every message key, so one tenant cannot read another's messages even by
guessing ids. Items carry `expires_at` (epoch seconds) for TTL retention."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import cache

import boto3
from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError

REQUEST_SK = "REQ"
# A request's message items are spread over SHARDS partition keys by position: one partition takes
# about 1,000 write units a second, so one key would cap a batch at ~1,000 messages/s (far fewer
# while reports land). The price: reading a whole request's messages is SHARDS queries.
SHARDS = 10
_DESERIALIZER = TypeDeserializer()
RETENTION_DAYS = int(os.environ.get("RETENTION_DAYS", "90"))


_CREATING = threading.Lock()  # boto3's default session is not safe for creating clients in parallel


@cache
def table():
    with _CREATING:
        return boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


@cache
def single_attempt_table():
    """The table through a client that never retries: for a write that must not be applied twice
    and cannot be made idempotent (an ADD; tuma.store.progress.move), whose caller decides."""
    with _CREATING:
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        return boto3.resource("dynamodb", config=config).Table(os.environ["TABLE_NAME"])


def forget_clients() -> None:
    """Drop the cached table clients (tests and the bench, between two moto accounts)."""
    table.cache_clear()
    single_attempt_table.cache_clear()


def message_pk(tenant_id: str, request_id: str) -> str:
    return f"T#{tenant_id}#M#{request_id}"


def recipient_pk(tenant_id: str, request_id: str, index: int) -> str:
    """The partition key of message `index` of a request (its shard); the request's other items
    (REQ, C#, J#, PROGRESS...) stay under message_pk."""
    return sharded_pk(message_pk(tenant_id, request_id), index)


def sharded_pk(request_pk: str, index: int) -> str:
    """recipient_pk from the request's message_pk (the expirer's due items keep only that)."""
    return f"{request_pk}#{index % SHARDS}"


def recipient_items_under(pk: str):
    """The key condition for the message items under one shard's key (the batch's progress
    counters share those keys: tuma.store.progress)."""
    return Key("pk").eq(pk) & Key("sk").begins_with(_RECIPIENT)


def recipient_pks(tenant_id: str, request_id: str, positions: Iterable[int] | None = None) -> list[str]:
    """The partition keys the message items at `positions` are under (every shard when None)."""
    shards = range(SHARDS) if positions is None else sorted({index % SHARDS for index in positions})
    return [f"{message_pk(tenant_id, request_id)}#{shard}" for shard in shards]


def recipient_key(tenant_id: str, request_id: str, index: int) -> dict:
    return {"pk": recipient_pk(tenant_id, request_id, index), "sk": recipient_sk(index)}


def recipient_sk(index: int) -> str:
    return f"R#{index:06d}"


def chunk_sk(start: int) -> str:
    return f"C#{start:06d}"


def job_sk(first_index: int) -> str:
    return f"J#{first_index:06d}"


_CHUNK, _RECIPIENT = "C#", "R#"


def is_chunk(item: dict) -> bool:
    return str(item.get("sk", "")).startswith(_CHUNK)


def is_recipient(item: dict) -> bool:
    return str(item.get("sk", "")).startswith(_RECIPIENT)


def position(item: dict) -> int:
    """The position a chunk item starts at, or a message item is at (its sort key's number)."""
    return int(item["sk"][2:])


def parse_message_pk(pk: str) -> tuple[str, str] | None:
    """(tenant, request id) of a message item's partition key `T#<tenant>#M#<request id>`, or None
    when `pk` is not one. The request id is as stored: the caller checks its form."""
    head, separator, request_id = pk.rpartition("#M#")
    if not separator or not head.startswith("T#") or not request_id:
        return None
    return head[2:], request_id


def parse_recipient_pk(pk: str) -> tuple[str, str] | None:
    """(tenant, request id) of a message item's partition key `T#<tenant>#M#<request id>#<shard>`
    (recipient_pk), or None when `pk` is not one."""
    request_pk, separator, shard = pk.rpartition("#")
    if not separator or not (shard.isascii() and shard.isdigit()) or int(shard) >= SHARDS:
        return None
    return parse_message_pk(request_pk)


def provider_key(provider: str, sk: str) -> dict:
    """An item about one provider account (Tuma's, not a tenant's)."""
    return {"pk": f"PROVIDER#{provider}", "sk": sk}


def expires_at(moment: datetime) -> int:
    return int((moment + timedelta(days=RETENTION_DAYS)).timestamp())


# An update's SET clause for an item it may create: the item's first writer sets its TTL (value
# :expires), and later writes leave it.
TTL_IF_ABSENT = "expires_at = if_not_exists(expires_at, :expires)"


def is_conditional_failure(problem: ClientError) -> bool:
    return problem.response["Error"]["Code"] == "ConditionalCheckFailedException"


def item_at_failure(problem: ClientError) -> dict:
    """The item a failed conditional write found (ReturnValuesOnConditionCheckFailure), in plain
    Python: even through the resource API it comes in DynamoDB's wire shape ({"S": ...})."""
    item = problem.response.get("Item") or {}
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def batch_write(items: list[dict]) -> None:
    """Put items 25 to a BatchWriteItem, retrying what DynamoDB leaves unprocessed."""
    _write_batches([{"PutRequest": {"Item": item}} for item in items])


def delete_batch(keys: list[dict]) -> None:
    """Delete items 25 to a BatchWriteItem, retrying what DynamoDB leaves unprocessed."""
    _write_batches([{"DeleteRequest": {"Key": key}} for key in keys])


def _write_batches(requests: list[dict]) -> None:
    client = table().meta.client
    for i in range(0, len(requests), 25):
        pending = {table().name: requests[i:i + 25]}
        for attempt in range(8):
            unprocessed = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not unprocessed:
                break
            pending = unprocessed
            time.sleep(0.05 * 2 ** attempt)  # throttled: back off, as AWS advises
        else:
            raise RuntimeError("DynamoDB kept items unprocessed after 8 attempts")


def put_once(item: dict) -> bool:
    """Put an item unless one with its key exists; whether it was put."""
    try:
        table().put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return False
    return True


def query_all(**query) -> Iterator[dict]:
    """Every item a Query finds, page after page."""
    while True:
        page = table().query(**query)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
