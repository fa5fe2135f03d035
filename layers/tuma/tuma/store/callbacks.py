"""The client-callback queue, and the visibility change that spaces its retries."""

from __future__ import annotations

import json
import os
from functools import cache

import boto3


@cache
def _sqs():
    return boto3.client("sqs")


def enqueue(job: dict) -> None:
    _sqs().send_message(QueueUrl=os.environ["CALLBACK_QUEUE_URL"], MessageBody=json.dumps(job, separators=(",", ":")))


def delay_retry(receipt_handle: str, seconds: int) -> None:
    _sqs().change_message_visibility(QueueUrl=os.environ["CALLBACK_QUEUE_URL"], ReceiptHandle=receipt_handle,
                                     VisibilityTimeout=seconds)
