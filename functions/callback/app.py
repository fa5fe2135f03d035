"""Callback queue → a signed POST to the client's callback_url. A 2xx ends it; anything else
(or no answer within the timeout) is retried with exponential backoff by setting the message's
visibility, until the queue's redrive policy moves it to the callback DLQ."""

import ipaddress
import socket
import time
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tuma import settings
from tuma.domain.callbacks import EVENT_ID_HEADER, SIGNATURE_HEADER, body_of, retry_delay, signature
from tuma.observability import logger, tracer
from tuma.store import callbacks, tenants

# One client's endpoint being down fails a whole batch routinely: report the failures (each with
# its own backoff already set) rather than fail the invocation.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
TIMEOUT_S = (3.05, 5.0)
BACKOFF_S = int(settings.env("CALLBACK_BACKOFF_S", "30"))
NETWORK = settings.env("CALLBACK_NETWORK", "public")  # public | loopback (the local stack)
http = requests.Session()


class CallbackFailed(Exception):
    pass


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refused_destination(url: str) -> str | None:
    """On AWS, never POST into a private network (the Lambda runtime API listens on loopback);
    locally, POST only to loopback (without even a DNS query for any other host)."""
    host = urlsplit(url).hostname or ""
    if NETWORK == "loopback":
        return None if _is_loopback(host) else "the local stack only calls back loopback addresses"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return None  # let the POST fail and be retried: DNS may come back
    if any(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        return "the callback_url resolves to a private address"
    return None


@tracer.capture_method
def deliver(record: SQSRecord) -> None:
    job = record.json_body
    payload = job["payload"]
    logger.append_keys(message_id=payload["message_id"], status=payload["status"])
    refused = _refused_destination(job["callback_url"])
    if refused:
        logger.warning("callback dropped", extra={"reason": refused})
        return
    secret = tenants.signing_secret(job["tenant_id"])
    if secret is None:
        raise CallbackFailed(f"tenant {job['tenant_id']} has no signing secret")
    body = body_of(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "Tuma-Callbacks/1",
               SIGNATURE_HEADER: signature(secret, int(time.time()), body), EVENT_ID_HEADER: payload["id"]}
    attempt = int(record.attributes.approximate_receive_count or 1)
    try:
        answer = http.post(job["callback_url"], data=body.encode(), headers=headers, timeout=TIMEOUT_S,
                           allow_redirects=False)
        outcome = f"HTTP {answer.status_code}"
        ok = 200 <= answer.status_code < 300
    except requests.RequestException as problem:
        outcome, ok = type(problem).__name__, False
    if ok:
        logger.info("callback delivered", extra={"attempt": attempt})
        return
    delay = retry_delay(attempt, BACKOFF_S)
    logger.info("callback failed; will retry", extra={"attempt": attempt, "outcome": outcome, "retry_in_s": delay})
    callbacks.delay_retry(record.receipt_handle, delay)
    raise CallbackFailed(f"attempt {attempt}: {outcome}")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
