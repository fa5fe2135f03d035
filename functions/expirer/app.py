"""On a schedule: `sent` SayaSMS messages with no final report after EXPIRE_AFTER_S become
`expired`. Reads only the hour buckets of due items since its last run, never scans the table."""

from datetime import datetime, timezone

from aws_lambda_powertools.metrics import MetricUnit

from tuma import settings
from tuma.observability import logger, metrics, tracer
from tuma.store.reports import expire_due


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    counts = expire_due(datetime.now(timezone.utc), lambda: context.get_remaining_time_in_millis() / 1000,
                        settings.expire_after())
    logger.info("expiry run", extra=counts)
    metrics.add_metric(name="MessagesExpired", unit=MetricUnit.Count, value=counts["expired"])
    return counts
