"""The send queue and its dead-letter queue."""

from __future__ import annotations

import json
import os
from functools import cache

import boto3


@cache
def _sqs():
    return boto3.client("sqs")


def enqueue(job: dict) -> None:
    _sqs().send_message(QueueUrl=os.environ["SEND_QUEUE_URL"], MessageBody=json.dumps(job, separators=(",", ":")))


def dead_letter(body: str, reason: str, message_id: str) -> None:
    """Park a job that can never be sent, with the reason beside it for whoever reads the DLQ."""
    _sqs().send_message(
        QueueUrl=os.environ["SEND_DLQ_URL"], MessageBody=body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000]},
            "source_message_id": {"DataType": "String", "StringValue": message_id}})
