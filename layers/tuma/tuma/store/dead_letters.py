"""The send DLQ's consumer's writes (tuma.domain.dead_letters): the sender's, every message
written only if it has no item yet, and the visibility that keeps a malformed job parked."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from functools import cache

import boto3

from tuma.domain.jobs import JobRecipient, SendJob
from tuma.domain.sending import Claim, Outcome
from tuma.store.sending import MessageStore
from tuma.store.table import _CREATING

PARKED_S = 42_900  # within SQS's 12 h limit counted from the receive: a malformed job shows about twice a day


class DeadLetterStore(MessageStore):
    def record(self, job: SendJob, claim: Claim, outcomes: list[tuple[JobRecipient, Outcome]], now: datetime) -> None:
        """Each message only if absent (a conditional put): any item already there is a status
        the sender or a report recorded (sent, unknown, cancelled, final), never to be replaced.
        MessageStore.record writes orphans that way; here every message is written as one."""
        super().record(job, replace(claim, orphaned=[r for r, _ in outcomes]), outcomes, now)


@cache
def _sqs():
    with _CREATING:
        return boto3.client("sqs")


def park(receipt_handle: str) -> None:
    """Leave a job in the send DLQ (with its `reason` attribute) for an operator, out of sight
    for 12 h so that its consumer does not spin on it; it stays until the queue's retention."""
    _sqs().change_message_visibility(QueueUrl=os.environ["SEND_DLQ_URL"], ReceiptHandle=receipt_handle,
                                     VisibilityTimeout=PARKED_S)
