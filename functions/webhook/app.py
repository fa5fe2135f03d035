"""POST /v1/webhooks/sayasms?token=<secret>&ref=<call>: SayaSMS delivery reports, behind a Function URL.

401 without the right token (compared in constant time; during a rotation the previous token
too: docs/delivery-reports.md), 413 for a body over MAX_BODY_BYTES, 400 for a body that is not a
report (not UTF-8 included), 200 for every well-formed report: applied, duplicate, late, or parked because the sender has not
recorded SayaSMS's message id yet. `ref` (the call's reference the sender put in the URL) only
narrows the look-up: a missing or malformed one is ignored. A few DynamoDB calls, no other network call."""

import base64
import binascii
import hmac
from datetime import datetime, timezone

# tuma.api first: it registers Powertools' event_handler without its __init__, which would load
# every resolver (tuma.lazy_powertools); the Function URL resolver is the one this function uses.
from tuma import api, settings  # isort: skip
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver  # isort: skip
from aws_lambda_powertools.metrics import MetricUnit

from tuma.domain.errors import ApiError
from tuma.domain.times import iso_millis
from tuma.domain.reports import MalformedReport, parse_report, receive
from tuma.observability import logger, metrics, tracer
from tuma.store.reports import DynamoReportStore

app = api.resolver(LambdaFunctionUrlResolver)
store = DynamoReportStore()
MAX_BODY_BYTES = 64 * 1024  # a SayaSMS report is under 1 KiB


# Most reports end here: no metric line for them (Lambda's Invocations counts them for free, and
# one EMF line per report would cost more in logs than the report's own DynamoDB work).
_ROUTINE = ("applied", "unchanged")


class Unauthorized(ApiError):
    status = 401


class TooLarge(ApiError):
    status = 413


def _authorized(given: str) -> bool:
    # Every token is compared, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in settings.webhook_tokens()]
    return any(matches)


def _check_body() -> None:
    """413 over the cap, 400 for a body that is not UTF-8 text (before it is read as JSON)."""
    event = app.current_event
    raw = event.body or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        raise ApiError("invalid_report", "The body is not valid base64.") from None
    if len(data) > MAX_BODY_BYTES:
        raise TooLarge("payload_too_large", f"A delivery report is at most {MAX_BODY_BYTES} bytes.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise ApiError("invalid_report", f"The body is not UTF-8 text (byte {problem.start}).") from None


@app.post("/v1/webhooks/sayasms")
@tracer.capture_method
def sayasms_report():
    given = app.current_event.get_query_string_value("token") or ""
    if not _authorized(given):
        metrics.add_metric(name="ReportsUnauthorized", unit=MetricUnit.Count, value=1)
        raise Unauthorized("unauthorized", "This webhook needs its token: ?token=<secret>.")
    now = datetime.now(timezone.utc)
    try:
        _check_body()
        report = parse_report(api.json_body(app), iso_millis(now), app.current_event.get_query_string_value("ref"))
    except MalformedReport as problem:
        metrics.add_metric(name="ReportsMalformed", unit=MetricUnit.Count, value=1)
        raise ApiError("invalid_report", f"Not a SayaSMS delivery report: {problem}.") from None
    except ApiError:
        metrics.add_metric(name="ReportsMalformed", unit=MetricUnit.Count, value=1)
        raise
    outcome = receive(report, store, now)
    logger.info("delivery report", extra={"event": report.event, "provider_message_id": report.provider_message_id,
                                          "outcome": outcome})
    if outcome not in _ROUTINE:
        metrics.add_metric(name=f"Reports{outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    return {"received": True, "outcome": outcome}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
