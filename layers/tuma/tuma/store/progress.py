"""A batch's progress counters, so that GET /v1/batches/{id} reads a few items, not 10,000:

  T#<tenant>#M#<batch id>#<shard> / PROGRESS   n_<status>: the batch's messages the sender has
                                       recorded, by their current status; spent: KES of those
                                       priced; segments: segments of those recorded (the estimate
                                       of the rest is the request's sendable segments minus these);
                                       expires_at: the table's TTL, set by whichever write creates
                                       the item (kept as long as the batch's messages)

The counters are split over the message items' SHARDS partition keys (tuma.store.table): a
report moves the counter in its message's shard, so a batch's reports spread over SHARDS keys
instead of queueing on one item (one item takes about 1,000 writes a second). The sender adds a
job's outcomes to the shard of the job's first message. A batch's figures are the sum of its
shards: one BatchGetItem of SHARDS + 1 items, whatever the batch's size.

Exact under retries and redelivery:
- The sender adds a job's outcomes in the same transaction that closes its claim, on the
  condition of its claim token: a job's outcomes count once, whichever attempt records them
  (a redelivered or retried job either finds its claim closed or counts only what it records).
- A delivery report or the expirer moves one message from its old status to its new one only
  after its conditional status write succeeded; a repeated report fails that write, so is not
  counted twice.
- What the counters cannot follow makes the batch `uncounted` (stop_counting): its GET reads its
  messages from then on, exact, and only that batch pays for it. That is:
  - a move whose outcome is unknown (an ADD sent twice moves the counts twice, so a move is never
    sent again unless DynamoDB certainly refused it, throttled);
  - a status write whose answer was lost (its retry finds it done: the old status is unknown);
  - a report applied before, or a message an earlier expiry run expired: the invocation that did
    it may have died between its status write and its move (tuma.store.reports).
- The sender's transaction needs none of that: botocore gives it one ClientRequestToken for all
  its retries, and DynamoDB applies a token once.
- A sender that dies between recording and closing its claim counted nothing; its takeover
  counts each message it finds recorded as the dead sender recorded it, so a report that moved
  the message in between (and counted its move) is not counted a second time.
What it does not survive: a status write whose invocation dies before its move and is never
followed by another attempt (SayaSMS stops retrying a report after three; docs/performance.md)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from tuma.domain import ids
from tuma.domain.status import SENDING
from tuma.observability import logger
from tuma.store.table import (
    REQUEST_SK, TTL_IF_ABSENT, expires_at, is_conditional_failure, message_pk, position, recipient_key, recipient_pk,
    recipient_pks, single_attempt_table, table)

PROGRESS_SK = "PROGRESS"
_SHOWN = "n_"  # counter attributes: n_<status>
MOVE_ATTEMPTS = 4  # of a counter move DynamoDB refused without applying it (throttled)
# DynamoDB's refusals of a request it did not apply: worth another try (any other 4xx is a bug).
NOT_APPLIED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
               "LimitExceededException"}


def _expires() -> int:
    """Every write that may create a counter item gives it a TTL (TTL_IF_ABSENT): without one, a
    batch's counters would outlive its messages and stay in the table for good."""
    return expires_at(datetime.now(timezone.utc))


def key(tenant_id: str, request_id: str, index: int) -> dict:
    """The counters in the shard of message `index`."""
    return {"pk": recipient_pk(tenant_id, request_id, index), "sk": PROGRESS_SK}


def counts(item: dict | None) -> dict[str, int]:
    """{status: messages} of a progress item (statuses no message is in left out)."""
    return {name[len(_SHOWN):]: int(value) for name, value in (item or {}).items()
            if name.startswith(_SHOWN) and int(value)}


def tally(job, outcomes, orphans_put: dict[int, bool]) -> dict | None:
    """What a job's recorded outcomes add to its batch's counters (None: not a batch). An orphan
    whose item was already there (a dead invocation wrote it, and never counted it) counts as
    that invocation recorded it: a report or expiry that moved it since has counted its move."""
    if not ids.is_batch(job.request_id):
        return None
    # Only the sender tallies (and has both loaded already): the webhook and the expirer, which
    # only move counts, do not load them on their cold starts.
    from tuma.domain.costs import amount
    from tuma.domain.segments import measure

    statuses: dict[str, int] = {}
    spent, segments = Decimal(0), 0
    kept = [r for r, _ in outcomes if orphans_put.get(r.index) is False]
    stored = _stored(job, kept) if kept else {}
    for recipient, outcome in outcomes:
        item = stored.get(recipient.index) or {"status": outcome.status, "cost": outcome.cost}
        status = _as_recorded(item)
        statuses[status] = statuses.get(status, 0) + 1
        spent += amount(item.get("cost")) or 0
        segments += measure(recipient.body).segments if recipient.body else 0
    return {"statuses": statuses, "spent": spent, "segments": segments,
            "index": outcomes[0][0].index if outcomes else 0}  # the counters' shard: the job's first message's


def _as_recorded(item: dict) -> str:
    """The status the sender recorded: the first of the item's history after `sending` (the
    reports and the expiry append theirs after it)."""
    recorded = next((entry["status"] for entry in item.get("history") or [] if entry.get("status") != SENDING), None)
    return recorded or item["status"]


def _stored(job, recipients) -> dict[int, dict]:
    found = {}
    for i in range(0, len(recipients), 100):
        answer = table().meta.client.batch_get_item(RequestItems={table().name: {
            "Keys": [recipient_key(job.tenant_id, job.request_id, r.index) for r in recipients[i:i + 100]],
            "ConsistentRead": True,
            "ProjectionExpression": "sk, #s, cost, history", "ExpressionAttributeNames": {"#s": "status"}}})
        for item in answer["Responses"].get(table().name, []):
            found[position(item)] = item
    return found


def _adding(added: dict) -> tuple[str, dict, dict]:
    names = {f"#n{i}": _SHOWN + status for i, status in enumerate(added["statuses"])}
    values = {f":n{i}": n for i, n in enumerate(added["statuses"].values())}
    parts = [f"#n{i} :n{i}" for i in range(len(names))] + ["spent :spent", "#g :segments"]
    return ("ADD " + ", ".join(parts) + " SET " + TTL_IF_ABSENT, {**names, "#g": "segments"},
            {**values, ":spent": added["spent"], ":segments": added["segments"], ":expires": _expires()})


def close_claim(update: dict, tenant_id: str, request_id: str, added: dict | None) -> bool:
    """The sender's claim-closing UpdateItem (`update`, conditional on its claim token), with the
    job's counts added in the same transaction when there are some. False: the claim was no
    longer ours (taken over as stale), and nothing was written."""
    if not added:
        try:
            table().update_item(**update)
            return True
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            return False
    expression, names, values = _adding(added)
    try:
        _transact([
            {"Update": {"Key": update["Key"], "UpdateExpression": update["UpdateExpression"],
                        "ConditionExpression": update["ConditionExpression"],
                        "ExpressionAttributeNames": update.get("ExpressionAttributeNames", {}),
                        "ExpressionAttributeValues": update["ExpressionAttributeValues"]}},
            {"Update": {"Key": key(tenant_id, request_id, added["index"]), "UpdateExpression": expression,
                        "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}])
        return True
    except ClientError as problem:
        reasons = problem.response.get("CancellationReasons") or []
        if problem.response["Error"]["Code"] == "TransactionCanceledException" and reasons and \
                reasons[0].get("Code") == "ConditionalCheckFailed":
            return False
        raise


def _transact(updates: list[dict]) -> None:
    # The resource's client takes plain Python values (boto3 serializes them, as for the table).
    items = []
    for entry in updates:
        update = dict(entry["Update"], TableName=table().name)
        if not update.get("ExpressionAttributeNames"):
            update.pop("ExpressionAttributeNames", None)
        items.append({"Update": update})
    table().meta.client.transact_write_items(TransactItems=items)


def move(tenant_id: str, request_id: str, index: int, old: str, new: str) -> None:
    """Message `index` of a batch went from `old` to `new` (its conditional status write succeeded).

    An ADD is not idempotent: botocore's retry of one whose answer was lost (a 500, a timeout
    after sending) would move the counts twice. So the move is sent by a client that does not
    retry, again only where DynamoDB certainly did not apply it; where that is unknown, the batch
    stops being counted (its GET reads its messages from then on: exact, and only such a batch
    pays for it)."""
    if not ids.is_batch(request_id) or old == new:
        return
    update = dict(Key=key(tenant_id, request_id, index), UpdateExpression="ADD #o :minus, #n :one SET " + TTL_IF_ABSENT,
                  ExpressionAttributeNames={"#o": _SHOWN + old, "#n": _SHOWN + new},
                  ExpressionAttributeValues={":minus": -1, ":one": 1, ":expires": _expires()})
    for attempt in range(MOVE_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * 2 ** attempt)
        try:
            single_attempt_table().update_item(**update)
            return
        except ClientError as problem:
            if problem.response["Error"]["Code"] in NOT_APPLIED:
                continue
            stop_counting(tenant_id, request_id, "a counter write was refused")
            if problem.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                raise  # a 4xx of our making: a bug, not DynamoDB's
            return  # a 5xx: applied or not, nobody can say
        except (EndpointConnectionError, ConnectTimeoutError):
            pass  # no connection, so nothing was sent
        except (BotoCoreError, OSError):
            break  # sent, and no answer
    stop_counting(tenant_id, request_id, "a counter write was not made, or not known to be")


def note_cancellation(tenant_id: str, request_id: str) -> None:
    """A message of the batch was cancelled on its own (tuma.store.cancels): such messages are not
    counted here, so the batch's progress is read from its messages from now on (rare)."""
    if ids.is_batch(request_id):
        _mark_uncounted(tenant_id, request_id)


def stop_counting(tenant_id: str, request_id: str, why: str) -> None:
    """The counters cannot follow what just happened to the batch (`why`): its progress is read
    from its messages from now on (exact, and only this batch pays for it)."""
    if ids.is_batch(request_id):
        logger.warning("batch counters given up: the batch is read from its messages from now on",
                       extra={"request_id": request_id, "reason": why})
        _mark_uncounted(tenant_id, request_id)


def _mark_uncounted(tenant_id: str, request_id: str) -> None:
    # A SET: botocore may retry it as often as it likes.
    table().update_item(Key=key(tenant_id, request_id, 0), UpdateExpression="SET uncounted = :yes, " + TTL_IF_ABSENT,
                        ExpressionAttributeValues={":yes": True, ":expires": _expires()})


def read(tenant_id: str, request_id: str) -> tuple[dict | None, dict | None]:
    """The request item and the batch's counters summed over their shards (None when no shard
    has any): one BatchGetItem of SHARDS + 1 items, strongly consistent."""
    pk = message_pk(tenant_id, request_id)
    keys = [{"pk": pk, "sk": REQUEST_SK}, *({"pk": shard, "sk": PROGRESS_SK} for shard in recipient_pks(tenant_id, request_id))]
    found, pending = [], {table().name: {"Keys": keys, "ConsistentRead": True}}
    while pending:
        answer = table().meta.client.batch_get_item(RequestItems=pending)
        found += answer["Responses"].get(table().name, [])
        pending = answer.get("UnprocessedKeys") or None
    request = next((item for item in found if item["sk"] == REQUEST_SK), None)
    return request, _summed([item for item in found if item["sk"] == PROGRESS_SK])


def _summed(shards: list[dict]) -> dict | None:
    if not shards:
        return None
    total: dict = {}
    for item in shards:
        for name, value in item.items():
            if name.startswith(_SHOWN) or name in ("spent", "segments"):
                total[name] = total.get(name, 0) + value
            elif name == "uncounted":
                total[name] = total.get(name) or bool(value)
    return total


def usable(request: dict | None, item: dict | None) -> bool:
    """Whether the counters tell the whole story: the request knows its sendable segments (it was
    accepted since they were counted), and no cancellation bypassed them."""
    return bool(request) and "segments" in request and not request.get("cancelled_at") \
        and not (item or {}).get("uncounted")
