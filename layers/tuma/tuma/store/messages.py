"""Messages in DynamoDB: the request as accepted, and each recipient's status with its history.

Every status write is conditional on the status machine (tuma.domain.status): a write that
would move a message back only appends to its history."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.messages import AcceptedSend, iso_millis
from tuma.domain.sending import Claims, Outcome
from tuma.domain.status import SENDING, earlier_than
from tuma.store.table import REQUEST_SK, RETENTION_DAYS, message_pk, recipient_sk, table

IN_FLIGHT, NOT_TAKEN, DONE = "in_flight", "not_taken", "done"
_WRITERS = 8  # concurrent single-item writes per job; DynamoDB has no conditional batch write


def _expires_at(moment: datetime) -> int:
    return int((moment + timedelta(days=RETENTION_DAYS)).timestamp())


def _is_conditional_failure(problem: ClientError) -> bool:
    return problem.response["Error"]["Code"] == "ConditionalCheckFailedException"


def put_request(accepted: AcceptedSend, now: datetime) -> None:
    table().put_item(Item={
        "pk": message_pk(accepted.tenant_id, accepted.request_id), "sk": REQUEST_SK,
        "kind": "request", "request_id": accepted.request_id, "tenant_id": accepted.tenant_id,
        "provider": accepted.provider, "from": accepted.sender, "created_at": accepted.created_at,
        "callback_url": accepted.callback_url,
        "recipients": [{"i": r.index, "number": r.number or r.given, "status": r.status,
                        **({"reason": r.reason} if r.reason else {})} for r in accepted.recipients],
        "expires_at": _expires_at(now),
    }, ConditionExpression="attribute_not_exists(pk)")


def get_request(tenant_id: str, request_id: str) -> tuple[dict | None, dict[int, dict]]:
    """The request item and its recipient items by index: one strongly consistent query."""
    items, start = [], None
    while True:
        page = table().query(
            KeyConditionExpression="pk = :pk", ConsistentRead=True,
            ExpressionAttributeValues={":pk": message_pk(tenant_id, request_id)},
            **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    request = next((i for i in items if i["sk"] == REQUEST_SK), None)
    recipients = {int(i["sk"][2:]): i for i in items if i["sk"].startswith("R#")}
    return request, recipients


class MessageStore:
    """The sender's store (tuma.domain.sending.SendStore)."""

    def claim(self, job: SendJob, recipients: list[JobRecipient], now: datetime) -> Claims:
        claims = Claims()
        with ThreadPoolExecutor(_WRITERS) as pool:
            for recipient, (state, old) in zip(recipients, pool.map(lambda r: self._claim(job, r, now), recipients)):
                if state == "claimed":
                    claims.claimed.append(recipient)
                elif old.get("attempt_state") == IN_FLIGHT and old.get("status") == SENDING:
                    claims.in_flight.append((recipient, datetime.fromisoformat(old["claimed_at"])))
                else:
                    claims.settled.append(recipient)
        return claims

    def _claim(self, job: SendJob, recipient: JobRecipient, now: datetime) -> tuple[str, dict]:
        at = iso_millis(now)
        try:
            table().update_item(
                Key={"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)},
                UpdateExpression=(
                    "SET #s = :sending, attempt_state = :in_flight, claimed_at = :claimed_at, "
                    "attempts = if_not_exists(attempts, :zero) + :one, message_id = :id, #n = :number, "
                    "provider = :provider, created_at = if_not_exists(created_at, :at), updated_at = :at, "
                    "expires_at = :expires, history = list_append(if_not_exists(history, :empty), :entry)"
                    # The client's callback_url rides on the recipient item for the stream's callbacks.
                    + (", callback_url = :callback_url" if job.callback_url else "")),
                ConditionExpression="attribute_not_exists(#s) OR (#s = :sending AND attempt_state = :not_taken)",
                ExpressionAttributeNames={"#s": "status", "#n": "number"},
                ExpressionAttributeValues={
                    ":sending": SENDING, ":in_flight": IN_FLIGHT, ":not_taken": NOT_TAKEN,
                    ":claimed_at": now.isoformat(), ":zero": 0, ":one": 1, ":id": recipient.message_id,
                    ":number": recipient.number, ":provider": job.provider, ":at": at,
                    ":expires": _expires_at(now), ":empty": [],
                    ":entry": [{"status": SENDING, "at": at, "provider": job.provider}],
                    **({":callback_url": job.callback_url} if job.callback_url else {})},
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return "claimed", {}
        except ClientError as problem:
            if not _is_conditional_failure(problem):
                raise
            return "taken", problem.response.get("Item") or {}

    def release(self, job: SendJob, recipients: list[JobRecipient], now: datetime, reason: str) -> None:
        at = iso_millis(now)
        entry = [{"status": SENDING, "at": at, "note": f"not taken by {job.provider}: {reason}; will retry"}]
        for recipient in recipients:
            try:
                table().update_item(
                    Key={"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)},
                    UpdateExpression="SET attempt_state = :not_taken, updated_at = :at, history = list_append(history, :entry)",
                    ConditionExpression="attempt_state = :in_flight",
                    ExpressionAttributeValues={":not_taken": NOT_TAKEN, ":in_flight": IN_FLIGHT, ":at": at, ":entry": entry})
            except ClientError as problem:
                if not _is_conditional_failure(problem):
                    raise

    def record(self, job: SendJob, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        with ThreadPoolExecutor(_WRITERS) as pool:
            list(pool.map(lambda pair: self._record(job, *pair, now), outcomes))

    def _record(self, job: SendJob, recipient: JobRecipient, outcome: Outcome, now: datetime) -> None:
        at = iso_millis(now)
        entry = {"status": outcome.status, "at": at, "provider": outcome.provider}
        fields = {"provider": outcome.provider, "attempt_state": DONE, "updated_at": at}
        for name in ("provider_message_id", "cost", "error_code", "reason"):
            if getattr(outcome, name):
                entry[name] = fields[name] = getattr(outcome, name)
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
        key = {"pk": message_pk(job.tenant_id, job.request_id), "sk": recipient_sk(recipient.index)}
        allowed = earlier_than(outcome.status)
        try:
            table().update_item(
                Key=key,
                UpdateExpression=f"SET #s = :status, {assignments}, history = list_append(if_not_exists(history, :empty), :entry)",
                ConditionExpression="#s IN (" + ", ".join(f":allowed{i}" for i in range(len(allowed))) + ")",
                ExpressionAttributeNames={"#s": "status", **names},
                ExpressionAttributeValues={":status": outcome.status, ":empty": [], ":entry": [entry], **values,
                                           **{f":allowed{i}": s for i, s in enumerate(allowed)}})
        except ClientError as problem:
            if not _is_conditional_failure(problem):
                raise
            # Already further on (e.g. a delivery report came first): keep the facts, not the status.
            entry["note"] = "recorded late; status unchanged"
            table().update_item(
                Key=key,
                UpdateExpression=f"SET {assignments}, history = list_append(if_not_exists(history, :empty), :entry)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":empty": [], ":entry": [entry], **values})
