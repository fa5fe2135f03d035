"""The send queue and its dead-letter queue."""

from __future__ import annotations

import json
import os
from functools import cache

import boto3

from tuma.store.table import _CREATING

MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limits
MAX_BATCH_BYTES = 256 * 1024


@cache
def _sqs():
    with _CREATING:
        return boto3.client("sqs")


class QueueingFailed(Exception):
    """SQS took only some jobs: `queued` lists those it took (in the order given)."""

    def __init__(self, queued: list[dict], problem: Exception):
        super().__init__(f"{len(queued)} job(s) queued before: {type(problem).__name__}")
        self.queued = queued


def enqueue(jobs: list[dict], delay_seconds: int = 0) -> None:
    """Put jobs on the send queue with as few SendMessageBatch calls as SQS's limits allow,
    retrying entries SQS reports as failed; `delay_seconds` (at most 900) hides them that long.
    Raises QueueingFailed, naming the jobs already queued, when a batch cannot be put."""
    batches: list[list[tuple[dict, str]]] = []
    size = 0
    for job in jobs:
        body = json.dumps(job, separators=(",", ":"), ensure_ascii=False)
        cost = len(body.encode())
        if not batches or len(batches[-1]) == MAX_BATCH_ENTRIES or size + cost > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append((job, body))
        size += cost
    queued: list[dict] = []
    for batch in batches:
        try:
            _send_batch([body for _, body in batch], delay_seconds)
        except Exception as problem:  # a throttle, a timeout, a refusal: the caller records what went
            raise QueueingFailed(queued, problem) from problem
        queued += [job for job, _ in batch]


def _send_batch(bodies: list[str], delay_seconds: int = 0) -> None:
    entries = [{"Id": str(i), "MessageBody": body, **({"DelaySeconds": delay_seconds} if delay_seconds else {})}
               for i, body in enumerate(bodies)]
    for _ in range(5):
        failed = _sqs().send_message_batch(QueueUrl=os.environ["SEND_QUEUE_URL"], Entries=entries).get("Failed") or []
        if not failed:
            return
        if any(f.get("SenderFault") for f in failed):
            raise RuntimeError(f"SQS refused a job: {failed[0].get('Code')}: {failed[0].get('Message')}")
        retry = {f["Id"] for f in failed}
        entries = [e for e in entries if e["Id"] in retry]
    raise RuntimeError(f"SQS kept failing {len(entries)} job(s)")


def dead_letter(body: str, reason: str, message_id: str) -> None:
    """Park a job that can never be sent, with the reason beside it for whoever reads the DLQ."""
    _sqs().send_message(
        QueueUrl=os.environ["SEND_DLQ_URL"], MessageBody=body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000]},
            "source_message_id": {"DataType": "String", "StringValue": message_id}})


def retry_later(receipt_handle: str, receive_count: int, base_seconds: int) -> None:
    """Bring a failed job back after an exponential backoff (base, 2×base, 4×base… up to 15
    minutes) instead of the queue's whole visibility timeout."""
    delay = min(base_seconds * 2 ** max(receive_count - 1, 0), 900)
    _sqs().change_message_visibility(QueueUrl=os.environ["SEND_QUEUE_URL"], ReceiptHandle=receipt_handle,
                                     VisibilityTimeout=delay)
