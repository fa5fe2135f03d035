"""DELETE /v1/messages/{id}: cancel a request or one message the sender has not taken yet
(tuma.cancelling); 200 with what is now cancelled, 409 when nothing is left to cancel."""

from datetime import datetime, timezone

from tuma import api
from tuma.cancelling import cancel
from tuma.observability import logger, metrics, tracer

app = api.resolver()


@app.delete("/v1/messages/<message_id>")
@tracer.capture_method
def cancel_message(message_id: str):
    return cancel(api.tenant_id(app), message_id, datetime.now(timezone.utc))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
