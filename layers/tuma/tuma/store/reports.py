"""Delivery reports and expiry in DynamoDB. Keys, besides those of tuma.store.table:

  PMSG#sayasms#<call> / MAP#<k>      which Tuma messages the ids of one SayaSMS call are, for the
                                     ids whose block is k (call and k: the call's reference,
                                     tuma.domain.reports.ReportRef): one attribute per SayaSMS id,
                                     named by the id, holding the message's index; tenant_id,
                                     request_id; `parked`: the marks (parked_mark) of the ids whose
                                     reports were parked before the block named them
  PMSG#sayasms#<SayaSMS message id> / MAP          which Tuma message it is (tenant, request,
                                                  index), for an id linked without a reference
                                                  (a takeover's relink) or whose block belongs to
                                                  another request
  PMSG#sayasms#<SayaSMS message id> / EVT#<slot>   a report that came before the mapping (parked;
                                                  slot: tuma.domain.reports.parking_slot)
  DUE#<yyyy-mm-ddThh>  / <due time>#<request pk>#<sk>   a job's sent messages to expire at <due time>
  DUE                  / CURSOR                     the oldest hour bucket the expirer has not finished

The blocks are issue 12's: one write unit links about 25 messages (a mapping item per message
cost one each), and their `parked` marks spare the sender a read per message for parked reports
that almost never exist. The grouping is lossless: an id is looked up in its call's block (when
the report came with a well-formed reference), then in its own MAP item.

A report is applied to the recipient item with one conditional UpdateItem: the status must be one
the report may replace (forward only, hence idempotent); otherwise nothing is written (a failed
conditional write is all it costs).

The sender's side (writing the mappings and due items, applying parked reports) is
tuma.store.linking: the webhook and the expirer do not load the sender's store."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
import zlib
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError

from tuma.domain import reports
from tuma.domain.times import iso_millis
from tuma.domain.reports import MessageRef, Report, ReportRef
from tuma.domain.status import EXPIRED, SENT, earlier_than
from tuma.store import history, progress
from tuma.store.table import (
    TTL_IF_ABSENT, delete_batch, expires_at, is_conditional_failure, item_at_failure, message_pk, parse_recipient_pk,
    position, recipient_key, recipient_sk, sharded_pk, table)

MAP_SK = "MAP"
BLOCK_PREFIX = "MAP#"
BLOCK_KIND = "provider_message_block"
PARKED_PREFIX = "EVT#"
DUE_CURSOR_KEY = {"pk": "DUE", "sk": "CURSOR"}
_FIRST_LOOKBACK = timedelta(days=7)  # where the expirer starts when it has no cursor yet
PARKED_FOR = timedelta(days=7)  # a report whose message never shows up is dropped (TTL) after this


def mapping_pk(provider_message_id: str) -> str:
    return f"PMSG#{reports.PROVIDER}#{provider_message_id}"


# A block's own attributes: an id spelled like one of them is linked by its own MAP item instead.
_BLOCK_ATTRIBUTES = frozenset({"pk", "sk", "kind", "tenant_id", "request_id", "expires_at", "parked"})


def in_block(provider_message_id: str) -> bool:
    """Whether the id may be an attribute of a block (it is not one of the block's own)."""
    return provider_message_id not in _BLOCK_ATTRIBUTES


def block_key(report_ref: ReportRef, provider_message_id: str) -> dict:
    """The block of the call `report_ref` that links this id."""
    return {"pk": mapping_pk(report_ref.call), "sk": f"{BLOCK_PREFIX}{report_ref.block_of(provider_message_id)}"}


def parked_mark(provider_message_id: str) -> int:
    """What marks an id's parked report on its block: 16 bits of a hash, not the id (about 30
    bytes), so that marks keep the block under 1 KB. Another id of the block with the same mark
    only costs the sender one read of an empty parking slot."""
    return zlib.crc32(provider_message_id.encode()) >> 16


def _recipient_key(ref: MessageRef) -> dict:
    return recipient_key(ref.tenant_id, ref.request_id, ref.index)


class DynamoReportStore:
    """tuma.domain.reports.ReportStore on the table."""

    def mapping(self, provider_message_id: str, consistent: bool = True,
                report_ref: ReportRef | None = None) -> MessageRef | None:
        """The id's attribute in its call's block, else its own MAP item (an id linked without a
        reference, or one the sender could not put in its block): a second read only for those."""
        if report_ref is not None and in_block(provider_message_id):
            item = table().get_item(Key=block_key(report_ref, provider_message_id), ConsistentRead=consistent,
                                    ProjectionExpression="tenant_id, request_id, #id",
                                    ExpressionAttributeNames={"#id": provider_message_id}).get("Item")
            if item and provider_message_id in item:
                return MessageRef(item["tenant_id"], item["request_id"], int(item[provider_message_id]))
        item = table().get_item(Key={"pk": mapping_pk(provider_message_id), "sk": MAP_SK},
                                ConsistentRead=consistent).get("Item")
        return MessageRef(item["tenant_id"], item["request_id"], int(item["index"])) if item else None

    def map(self, provider_message_id: str, ref: MessageRef, now: datetime) -> None:
        table().put_item(Item=mapping_item(provider_message_id, ref, now))

    def park(self, report: Report, now: datetime) -> None:
        """Park the report under its id, then mark it `parked` on its call's block (creating the
        block if the sender has not yet): the sender reads parked reports only for marked ids.

        No report is stranded, because both sides write the block item before they read it:
        the webhook marks, then reads the mapping again (tuma.domain.reports.receive); the
        sender sets its slots and gets the block back in the same UpdateItem (ALL_NEW). DynamoDB
        applies the two updates one after the other. Mark first: the sender's answer shows the
        mark, and the report, parked before the mark, is there for the sender's read. Sender
        first: the webhook's strongly consistent read, after its mark, sees the slot and
        applies the report itself. (A report without a reference marks nothing: the sender reads
        the parking slot of every id it links without a block.)"""
        expires = int((now + PARKED_FOR).timestamp())
        try:
            table().put_item(Item={
                "pk": mapping_pk(report.provider_message_id), "sk": PARKED_PREFIX + reports.parking_slot(report.event),
                "kind": "parked_report", **report.to_item(), "expires_at": expires},
                ConditionExpression="attribute_not_exists(pk)")
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            # The same report is already parked; mark anyway: its first webhook may have died
            # between parking and marking.
        if report.report_ref is not None and in_block(report.provider_message_id):
            table().update_item(
                Key=block_key(report.report_ref, report.provider_message_id),
                UpdateExpression="ADD parked :m SET kind = :kind, " + TTL_IF_ABSENT,
                ExpressionAttributeValues={":m": {parked_mark(report.provider_message_id)}, ":kind": BLOCK_KIND,
                                           ":expires": expires})

    def parked(self, provider_message_id: str) -> list[Report]:
        items = table().query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)", ConsistentRead=True,
            ExpressionAttributeValues={":pk": mapping_pk(provider_message_id), ":evt": PARKED_PREFIX})["Items"]
        return reports.by_arrival(Report.from_item(item) for item in items)

    def unpark(self, report: Report) -> None:
        table().delete_item(Key={"pk": mapping_pk(report.provider_message_id),
                                 "sk": PARKED_PREFIX + reports.parking_slot(report.event)})

    def apply(self, ref: MessageRef, report: Report, now: datetime) -> str:
        entry = history.report_entry(report)  # its details go onto the item, not into the entry
        fields = {"updated_at": iso_millis(now), **report.details}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
        allowed = earlier_than(report.status)
        try:
            answer = table().update_item(
                Key=_recipient_key(ref),
                UpdateExpression=f"SET #s = :status, {assignments}, history = list_append(history, :entry)",
                ConditionExpression=("attribute_exists(#s) AND #s IN ("
                                     + ", ".join(f":a{i}" for i in range(len(allowed))) + ")"),
                ExpressionAttributeNames={"#s": "status", **names},
                ExpressionAttributeValues={":status": report.status, ":entry": [entry], **values,
                                           **{f":a{i}": s for i, s in enumerate(allowed)}},
                ReturnValues="UPDATED_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as problem:
            if not is_conditional_failure(problem):
                raise
            old, failure = item_at_failure(problem), problem.response
        else:
            progress.move(ref.tenant_id, ref.request_id, ref.index, answer["Attributes"]["status"], report.status)
            return "applied"
        # Nothing written: a report that changes nothing is not worth a write (issue 12).
        if not old:
            return "no_message"
        if _lost_answer(failure, old, entry):
            # Our own write, its answer lost: botocore sent it again and the retry found it done.
            # The status it moved from is not known here (history may hold late notes).
            progress.stop_counting(ref.tenant_id, ref.request_id, "a report's status write lost its answer")
            return "applied"
        if _applied_before(old, entry):
            # Applied before by an invocation that may have died between the status write and the
            # count: SayaSMS sends a report again only when a delivery got no 200, and a sender
            # taking over a dead one applies the parked reports it finds again.
            progress.stop_counting(ref.tenant_id, ref.request_id, "a report came again after an applied one")
        return "duplicate" if old.get("status") == report.status else "late"


def _lost_answer(response: dict, item: dict, entry: dict) -> bool:
    """Whether a conditional write failed only because an earlier attempt of it succeeded: botocore
    retried it (its answer was lost) and the item's last history entry is this write's own. Both
    are needed: the sender and the webhook may apply the same parked report (an equal entry),
    and a retry alone may have met another writer."""
    retried = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
    history = item.get("history") or []
    return retried and bool(history) and history[-1] == entry


def _applied_before(item: dict, entry: dict) -> bool:
    """Whether the item holds this report's event already: a report applied before (by another
    delivery of it, or by the other side of a parked report's twin application)."""
    return any(e.get("event") == entry["event"] for e in item.get("history") or [])


def mapping_item(provider_message_id: str, ref: MessageRef, now: datetime) -> dict:
    return {"pk": mapping_pk(provider_message_id), "sk": MAP_SK, "kind": "provider_message",
            "tenant_id": ref.tenant_id, "request_id": ref.request_id, "index": ref.index,
            "expires_at": expires_at(now)}


def link_block(report_ref: ReportRef, block: int, indices: dict[str, int], tenant_id: str, request_id: str,
               now: datetime) -> set[str] | None:
    """Set the ids -> message index of one block of the call `report_ref`, in one UpdateItem (the
    same values again on a retry). The ids among them whose mark is `parked` (their reports may
    have come first, see DynamoReportStore.park), or None when the block belongs to another
    request: those ids then need their own MAP items."""
    ids = sorted(indices)
    names = {f"#i{i}": pid for i, pid in enumerate(ids)}
    sets = ", ".join(f"#i{i} = :i{i}" for i in range(len(ids)))
    try:
        answer = table().update_item(
            Key={"pk": mapping_pk(report_ref.call), "sk": f"{BLOCK_PREFIX}{block}"},
            UpdateExpression=f"SET kind = :kind, tenant_id = :t, request_id = :r, expires_at = :e, {sets}",
            ConditionExpression="attribute_not_exists(request_id) OR (request_id = :r AND tenant_id = :t)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":kind": BLOCK_KIND, ":t": tenant_id, ":r": request_id, ":e": expires_at(now),
                                       **{f":i{i}": indices[pid] for i, pid in enumerate(ids)}},
            ReturnValues="ALL_NEW")
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return None
    marks = {int(m) for m in answer["Attributes"].get("parked", ())}
    return {pid for pid in ids if parked_mark(pid) in marks}


# --- expiry ------------------------------------------------------------------------------------

def _bucket(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H")


def _bucket_start(bucket: str) -> datetime:
    return datetime.strptime(bucket, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)


def due_item(refs: list[MessageRef], due: datetime, now: datetime) -> dict:
    """One due item for the `sent` messages of one request recorded together (a job): the
    expirer's work stays per job, not per message. It keeps the request's key, not the messages'
    shards: the expirer derives those (tuma.store.table.sharded_pk)."""
    pk = message_pk(refs[0].tenant_id, refs[0].request_id)
    sks = [recipient_sk(ref.index) for ref in refs]
    return {"pk": f"DUE#{_bucket(due)}", "sk": f"{iso_millis(due)}#{pk}#{sks[0]}", "kind": "expiry",
            "target_pk": pk, "target_sks": sks, "expires_at": expires_at(now)}


def schedule_expiry(ref: MessageRef, due: datetime, now: datetime) -> None:
    table().put_item(Item=due_item([ref], due, now))


def expire_due(now: datetime, time_left: Callable[[], float], after: timedelta) -> dict[str, int]:
    """Expire every sent message whose due time has passed, bucket by bucket from the cursor to
    the current hour: a handful of small queries, never a scan. Stops early when time runs short;
    the next run carries on from the cursor."""
    counts = {"expired": 0, "settled": 0}
    cursor_item = table().get_item(Key=DUE_CURSOR_KEY, ConsistentRead=True).get("Item")
    bucket_time = _bucket_start(cursor_item["bucket"]) if cursor_item else _bucket_start(_bucket(now - _FIRST_LOOKBACK))
    cursor = _bucket(bucket_time)
    reason = f"no final delivery report within {_duration(after)}"
    while bucket_time <= now and time_left() > 5:
        bucket = _bucket(bucket_time)
        finished = _expire_bucket(bucket, now, reason, counts, time_left)
        if not (finished and bucket_time + timedelta(hours=1) <= now):
            break
        bucket_time += timedelta(hours=1)
        cursor = _bucket(bucket_time)
    if not cursor_item or cursor_item["bucket"] != cursor:
        table().put_item(Item={**DUE_CURSOR_KEY, "bucket": cursor})
    return counts


_EXPIRERS = 16


def _expire_bucket(bucket: str, now: datetime, reason: str, counts: dict, time_left) -> bool:
    """True when nothing due is left in the bucket."""
    start = None
    while True:
        page = table().query(
            KeyConditionExpression="pk = :pk AND sk < :now", ConsistentRead=True,
            Limit=5,  # due items of up to 1,000 messages each: a page is at most 5,000 expiries
            ExpressionAttributeValues={":pk": f"DUE#{bucket}", ":now": iso_millis(now)},
            **({"ExclusiveStartKey": start} if start else {}))
        if time_left() <= 5:
            return False
        # A page at a time: which messages still wait (one cheap read each), then the conditional
        # expiries of those only, concurrently, then the due items in batches.
        targets = [(sharded_pk(item["target_pk"], position({"sk": sk})), sk)
                   for item in page["Items"] for sk in item["target_sks"]]
        waiting, expired_before = _still_waiting(targets)
        counts["settled"] += len(targets) - len(waiting)
        # Only the expirer expires, and it deletes a due item once done with it: a message of this
        # page already expired was expired by a run that died before that, perhaps before counting.
        for request in {parse_recipient_pk(pk) for pk, _ in expired_before}:
            progress.stop_counting(*request, "an expiry run died before it was done")
        with ThreadPoolExecutor(_EXPIRERS) as pool:
            for expired in pool.map(lambda target: _expire_one(*target, now, reason), waiting):
                counts["expired" if expired else "settled"] += 1
        delete_batch([{"pk": item["pk"], "sk": item["sk"]} for item in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if not start:
            return True


def _still_waiting(targets: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The targets whose status expiry may still replace, and those expired already: BatchGetItem,
    eventually consistent and projected to the status (half a read unit per message, against a
    write unit for a blind conditional write). A stale answer only costs a conditional write that
    then fails (or, for one not yet seen expired, nothing: its own run counted it)."""
    allowed = set(earlier_than(EXPIRED))
    waiting, expired = [], []
    client = table().meta.client
    for i in range(0, len(targets), 100):  # BatchGetItem's limit
        pending = {table().name: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in targets[i:i + 100]],
                                  "ProjectionExpression": "pk, sk, #s", "ExpressionAttributeNames": {"#s": "status"}}}
        while pending:
            answer = client.batch_get_item(RequestItems=pending)
            for item in answer["Responses"].get(table().name, []):
                if item.get("status") in allowed:
                    waiting.append((item["pk"], item["sk"]))
                elif item.get("status") == EXPIRED:
                    expired.append((item["pk"], item["sk"]))
            pending = answer.get("UnprocessedKeys") or None
    return waiting, expired


def _expire_one(pk: str, sk: str, now: datetime, reason: str) -> bool:
    at = iso_millis(now)
    entry = {"status": EXPIRED, "at": at, "reason": reason}
    allowed = earlier_than(EXPIRED)
    try:
        answer = table().update_item(
            Key={"pk": pk, "sk": sk},
            UpdateExpression="SET #s = :expired, updated_at = :at, history = list_append(history, :entry)",
            ConditionExpression="#s IN (" + ", ".join(f":a{i}" for i in range(len(allowed))) + ")",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":expired": EXPIRED, ":at": at, ":entry": [entry],
                                       **{f":a{i}": s for i, s in enumerate(allowed)}},
            ReturnValues="UPDATED_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        old = item_at_failure(problem)
        if old.get("status") != EXPIRED:
            return False  # delivered or failed: nothing to do
        # Expired already, and only the expirer expires: by this very write (its answer lost, so
        # botocore sent it again) or by a run that died before it deleted the due item. Either
        # may not have counted it, and from which status is not known here.
        progress.stop_counting(*parse_recipient_pk(pk), "a message was found expired already")
        return _lost_answer(problem.response, old, entry)
    tenant_id, request_id = parse_recipient_pk(pk)
    progress.move(tenant_id, request_id, position({"sk": sk}), answer["Attributes"]["status"], EXPIRED)
    return True


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"
