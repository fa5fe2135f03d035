"""The send DLQ → every message of a job that ran out of retries ends `failed`
(`retries_exhausted`, tuma.domain.dead_letters) instead of staying `queued` forever.

A malformed job (parked by the sender with its `reason` attribute, or one that no longer
parses) is logged and left in the DLQ for an operator. To retry jobs instead, disable this
consumer (SendDeadLetterAction=keep) and redrive the DLQ: docs/dead-letters.md."""

from datetime import datetime, timedelta, timezone

from tuma import lazy_powertools  # noqa: F401, I001  (first: the batch utility without every event class)
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tuma import settings
from tuma.domain.dead_letters import end_job
from tuma.domain.jobs import MalformedJob, parse_job
from tuma.domain.sending import in_flight_grace
from tuma.observability import logger, metrics, tracer
from tuma.store import dead_letters

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
store = dead_letters.DeadLetterStore()
# A claim older than the sender's timeout belongs to an invocation that can no longer finish.
# SENDER_TIMEOUT_S is the sender's Timeout (template.yaml; a unit test holds the two equal).
IN_FLIGHT_GRACE = in_flight_grace(timedelta(seconds=int(settings.env("SENDER_TIMEOUT_S"))))


class KeptForOperator(Exception):
    pass


def _attribute(record: SQSRecord, name: str) -> str | None:
    attributes = record.message_attributes
    return attributes[name].string_value if name in attributes else None


@tracer.capture_method
def handle(record: SQSRecord) -> None:
    reason = _attribute(record, "reason")
    if reason is None:
        try:
            job = parse_job(record.body, record.message_id)
        except MalformedJob as problem:
            reason = str(problem)
    if reason is not None:
        logger.warning("malformed job kept in the DLQ", extra={
            "sqs_message_id": record.message_id, "source_message_id": _attribute(record, "source_message_id"),
            "reason": reason})
        metrics.add_metric(name="DeadLetterJobsKept", unit=MetricUnit.Count, value=1)
        dead_letters.park(record.receipt_handle)
        raise KeptForOperator(reason)
    report = end_job(job, store, lambda: datetime.now(timezone.utc), IN_FLIGHT_GRACE)
    logger.info("job out of retries ended", extra={"message_id": job.request_id, "tenant_id": job.tenant_id,
                                                   "statuses": report.by_status})
    metrics.add_metric(name="JobsRetriesExhausted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="MessagesRetriesExhausted", unit=MetricUnit.Count, value=report.by_status.get("failed", 0))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
