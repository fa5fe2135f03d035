"""The table's stream records of message items, read for the callbacks; the client-callback
queue, and the visibility change that spaces its retries."""

from __future__ import annotations

import json
import os
from functools import cache

import boto3

from tuma.domain.ids import parse_message_id
from tuma.domain.records import MessageChange
from tuma.store.table import is_recipient, parse_recipient_pk, position


def message_change(old_image: dict | None, new_image: dict | None) -> MessageChange | None:
    """What one stream record of the table says about a message's status item, or None when the
    record is about another item (a request, a chunk, a job, a key...) or a removal."""
    if not new_image or not is_recipient(new_image):
        return None
    key = parse_recipient_pk(str(new_image.get("pk", "")))
    if key is None:
        return None
    tenant_id, request_id = key
    parsed = parse_message_id(request_id)
    if parsed is None or parsed[1] is not None:  # a request's id (msg_…, bat_…), never a message's
        return None
    return MessageChange(tenant_id=tenant_id, request_id=request_id, index=position(new_image), new=new_image,
                         old_status=(old_image or {}).get("status"))


@cache
def _sqs():
    return boto3.client("sqs")


def enqueue(job: dict) -> None:
    _sqs().send_message(QueueUrl=os.environ["CALLBACK_QUEUE_URL"], MessageBody=json.dumps(job, separators=(",", ":")))


def delay_retry(receipt_handle: str, seconds: int) -> None:
    _sqs().change_message_visibility(QueueUrl=os.environ["CALLBACK_QUEUE_URL"], ReceiptHandle=receipt_handle,
                                     VisibilityTimeout=seconds)
