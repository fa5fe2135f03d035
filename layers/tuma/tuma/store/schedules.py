"""Scheduled requests: their held jobs in the table and their one-time EventBridge Scheduler
schedules. Keys, besides those of tuma.store.table:

  T#<tenant>#M#<request id> / S#<n>    a held job (its JSON) whose first message is n, until release

The request item gains `scheduled_at`, then `released_at` once its jobs are on the queue, or
`cancelled_at` (tuma.store.cancels)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from functools import cache

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tuma.domain import scheduling
from tuma.store.table import _CREATING, REQUEST_SK, is_conditional_failure, message_pk, query_all, table

HELD_PREFIX = "S#"


@cache
def _scheduler():
    with _CREATING:
        return boto3.client("scheduler")


def held_job_sk(first_index: int) -> str:
    return f"{HELD_PREFIX}{first_index:06d}"


def held_job_item(pk: str, job: dict, expires: int) -> dict:
    """A job kept until its request's time: as JSON text, exactly what will go on the queue
    (jobs are at most 200 KB, under DynamoDB's 400 KB per item)."""
    return {"pk": pk, "sk": held_job_sk(scheduling.job_start(job)), "kind": "held_job",
            "job": json.dumps(job, separators=(",", ":"), ensure_ascii=False), "expires_at": expires}


def held_jobs(tenant_id: str, request_id: str) -> list[dict]:
    return [json.loads(item["job"]) for item in query_all(
        KeyConditionExpression=Key("pk").eq(message_pk(tenant_id, request_id)) & Key("sk").begins_with(HELD_PREFIX),
        ConsistentRead=True)]


def mark_released(tenant_id: str, request_id: str, at: str) -> bool:
    """Record that the request's jobs are on the queue (`at`: iso_millis); False if that was
    recorded already."""
    try:
        table().update_item(Key={"pk": message_pk(tenant_id, request_id), "sk": REQUEST_SK},
                            UpdateExpression="SET released_at = :now",
                            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(released_at)",
                            ExpressionAttributeValues={":now": at})
    except ClientError as problem:
        if not is_conditional_failure(problem):
            raise
        return False
    return True


def create_release_schedule(tenant_id: str, request_id: str, scheduled_at: datetime) -> None:
    """One one-time schedule that invokes the release function with {tenant_id, request_id} at
    `scheduled_at` (UTC) and deletes itself afterwards."""
    target = {"Arn": os.environ["RELEASE_FUNCTION_ARN"], "RoleArn": os.environ["SCHEDULER_ROLE_ARN"],
              "Input": json.dumps(scheduling.release_input(tenant_id, request_id))}
    if os.environ.get("RELEASE_DLQ_ARN"):
        # Invocations Scheduler could not make (after its retries) are parked there with their input.
        target["DeadLetterConfig"] = {"Arn": os.environ["RELEASE_DLQ_ARN"]}
    _scheduler().create_schedule(
        Name=scheduling.schedule_name(request_id), GroupName=os.environ["SCHEDULE_GROUP"],
        ScheduleExpression=scheduling.at_expression(scheduled_at), ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE", Target=target,
        Description=f"Tuma: release scheduled request {request_id}")


def delete_release_schedule(request_id: str) -> bool:
    """Delete a request's schedule; False if there is none (it fired, or never existed)."""
    try:
        _scheduler().delete_schedule(Name=scheduling.schedule_name(request_id), GroupName=os.environ["SCHEDULE_GROUP"])
    except ClientError as problem:
        if problem.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return False
    return True
