"""Callback queue → a signed POST to the client's callback_url. A 2xx ends it; anything else
(or no answer within the timeout) is retried with exponential backoff by setting the message's
visibility, until the queue's redrive policy moves it to the callback DLQ.

The batch's POSTs run at once, each in its own thread, so one slow receiver cannot use up the
invocation for the others; a POST that could not finish in the time left is not started (it
is reported as failed and comes back). Only the undelivered are reported as failures."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from tuma import lazy_powertools  # noqa: F401, I001  (first: the batch utility without every event class)
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tuma import callback_http, settings
from tuma.domain.callbacks import EVENT_ID_HEADER, SIGNATURE_HEADER, body_of, retry_delay, signature
from tuma.observability import logger, tracer
from tuma.store import callbacks, tenants

# One client's endpoint being down fails a whole batch routinely: report the failures (each with
# its own backoff already set) rather than fail the invocation.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
BACKOFF_S = int(settings.env("CALLBACK_BACKOFF_S", "30"))
NETWORK = settings.env("CALLBACK_NETWORK", "public")  # public | loopback (the local stack)
SKIPPED_RETRY_S = 5  # a callback not started for lack of time comes back soon
_pool = ThreadPoolExecutor(max_workers=10)  # the event source's BatchSize: every POST of a batch at once
_deadline = {"at": float("inf")}  # this invocation's end (time.monotonic()), set by the handler


class CallbackFailed(Exception):
    pass


@tracer.capture_method
def deliver(record: SQSRecord) -> None:
    job = record.json_body
    payload = job["payload"]
    keys = {"message_id": payload["message_id"], "status": payload["status"]}
    attempt = int(record.attributes.approximate_receive_count or 1)
    secret = tenants.signing_secret(job["tenant_id"])
    if secret is None:
        raise CallbackFailed(f"tenant {job['tenant_id']} has no signing secret")
    body = body_of(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "Tuma-Callbacks/1",
               SIGNATURE_HEADER: signature(secret, int(time.time()), body), EVENT_ID_HEADER: payload["id"]}
    if _deadline["at"] - time.monotonic() < callback_http.BUDGET_S:
        logger.info("callback not started: too little time left", extra=keys)
        callbacks.delay_retry(record.receipt_handle, SKIPPED_RETRY_S)
        raise CallbackFailed("not started: too little time left in this invocation")
    try:
        status = callback_http.post(job["callback_url"], body.encode(), headers, NETWORK)
        outcome, ok = f"HTTP {status}", 200 <= status < 300
    except callback_http.Refused as refused:
        logger.warning("callback dropped", extra={**keys, "reason": str(refused)})
        return
    except callback_http.Failed as problem:
        outcome, ok = str(problem), False
    if ok:
        logger.info("callback delivered", extra={**keys, "attempt": attempt})
        return
    delay = retry_delay(attempt, BACKOFF_S)
    logger.info("callback failed; will retry",
                extra={**keys, "attempt": attempt, "outcome": outcome, "retry_in_s": delay})
    callbacks.delay_retry(record.receipt_handle, delay)
    raise CallbackFailed(f"attempt {attempt}: {outcome}")


async def deliver_async(record: SQSRecord) -> None:
    await asyncio.get_running_loop().run_in_executor(_pool, deliver, record)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    _deadline["at"] = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    return async_process_partial_response(event=event, record_handler=deliver_async, processor=processor,
                                          context=context)
