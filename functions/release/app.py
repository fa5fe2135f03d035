"""A scheduled request's time has come: EventBridge Scheduler invokes this with
{"tenant_id", "request_id"}, and its held jobs go on the send queue (tuma.releasing)."""

from datetime import datetime, timezone

from tuma.releasing import release
from tuma.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    outcome = release(event["tenant_id"], event["request_id"], datetime.now(timezone.utc))
    logger.info("release done", extra={"message_id": event["request_id"], "outcome": outcome})
    return {"outcome": outcome}
