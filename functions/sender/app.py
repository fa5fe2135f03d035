"""The sender: an SQS batch of jobs, sent concurrently; only failed jobs go back to the queue.

A malformed job, or a producer job whose request id names another job, is moved to the DLQ with
its reason and reported as handled, so it neither fails its neighbours nor is retried."""

import asyncio
import math
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from tuma import lazy_powertools  # noqa: F401, I001  (first: the batch utility without every event class)
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tuma import settings, suppressing
from tuma.domain import costs
from tuma.domain.failover import Dispatcher
from tuma.domain.jobs import MalformedJob, parse_job
from tuma.domain.sending import JobReport, in_flight_grace, send_job
from tuma.observability import NAMESPACE, loggable, logger, metrics, tracer
from tuma.providers import timeouts
from tuma.store import queue
from tuma.store.circuit import DynamoBreaker
from tuma.store.linking import ReportingMessageStore

processor = AsyncBatchProcessor(event_type=EventType.SQS)
# Records outcomes, and links SayaSMS's ids to messages for delivery reports (tuma.store.linking).
store = ReportingMessageStore(settings.expire_after())
# A claim older than the function's timeout belongs to an invocation that can no longer finish.
# The timeout is read from the Lambda context (what is left at the handler's start, rounded up:
# the function's Timeout), so template.yaml sets it in one place (tuma.domain.sending.in_flight_grace).
_grace = {"claim": in_flight_grace(timedelta(seconds=30))}  # until the first handler call reads it
RETRY_BASE_SECONDS = int(settings.env("RETRY_BASE_SECONDS", "20"))
ROUTING = settings.routing_policy()  # read at cold start: bad rules fail loudly, before any job
BREAKER = DynamoBreaker(settings.circuit_settings())
ESTIMATE_COST = costs.estimator(settings.rates())  # 254sms prices nothing: segments × its rate
# The longest one provider call may take, and recording its answer after it.
CALL_BUDGET_S = timeouts.CONNECT_TIMEOUT_S + timeouts.READ_TIMEOUT_S + 3
_deadline = {"at": float("inf")}  # this invocation's end (time.monotonic()), set by the handler


def function_timeout(remaining_ms_at_start: int) -> timedelta:
    """The function's Timeout, from the time left when its handler starts (whole seconds)."""
    return timedelta(seconds=math.ceil(remaining_ms_at_start / 1000))


def _time_left() -> float:
    return _deadline["at"] - time.monotonic()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def handle_job(record: SQSRecord) -> None:
    try:
        job = parse_job(record.body)
        keys = {"message_id": job.request_id, "tenant_id": job.tenant_id, "pinned": job.provider}
        if not job.from_api:  # the API screened its own requests at accept (tuma.suppressing)
            job = suppressing.screen_job(job)
        dispatcher = Dispatcher(settings.providers(), ROUTING, BREAKER, _now, time_left=_time_left,
                                call_budget_s=CALL_BUDGET_S)
        report = send_job(job, store, dispatcher, _now, _grace["claim"], estimate_cost=ESTIMATE_COST)
    except MalformedJob as problem:  # JobConflict too: raised before any provider call
        logger.warning("malformed job moved to the DLQ", extra={"sqs_message_id": record.message_id, "reason": str(problem)})
        queue.dead_letter(record.body, str(problem), record.message_id)
        metrics.add_metric(name="MalformedJobs", unit=MetricUnit.Count, value=1)
        return
    except Exception as problem:
        shown = loggable(problem)  # the batch's error reaches the log too: raise only what may be read
        logger.warning("job will be retried", extra={"sqs_message_id": record.message_id, "reason": str(shown)})
        receive_count = int(record.attributes.approximate_receive_count or 1)
        queue.retry_later(record.receipt_handle, receive_count, RETRY_BASE_SECONDS)
        raise shown from None
    logger.info("job done", extra={**keys, "counts": {f"{p}:{s}": n for (p, s), n in report.counts.items()},
                                   "failovers": {f"{a}->{b}": n for (a, b), n in report.failovers.items()}})
    _publish(report)


def _publish(report: JobReport) -> None:
    # A job's messages may go through either provider: each figure has its own dimensions.
    # MessagesUnknown counts the ambiguous ones (the provider may have sent them).
    for (provider, status), count in report.counts.items():
        with single_metric(name=f"Messages{status.capitalize()}", unit=MetricUnit.Count, value=count,
                           namespace=NAMESPACE) as metric:
            metric.add_dimension(name="provider", value=provider)
    for (source, target), count in report.failovers.items():
        with single_metric(name="MessagesFailedOver", unit=MetricUnit.Count, value=count,
                           namespace=NAMESPACE) as metric:
            metric.add_dimension(name="from", value=source)
            metric.add_dimension(name="to", value=target)


async def handle_job_async(record: SQSRecord) -> None:
    # The jobs of a batch run at once, each in a thread: their time is spent waiting on providers.
    await asyncio.to_thread(handle_job, record)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    remaining_ms = context.get_remaining_time_in_millis()
    _deadline["at"] = time.monotonic() + remaining_ms / 1000
    timeout = function_timeout(remaining_ms)
    _grace["claim"] = in_flight_grace(timeout)
    BREAKER.settings = replace(BREAKER.settings, probe_grace=timeout)  # a probe's sender is gone after it
    return async_process_partial_response(event=event, record_handler=handle_job_async, processor=processor,
                                          context=context)
