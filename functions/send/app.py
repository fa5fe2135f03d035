"""POST /v1/messages: validate, store the request, queue one job, answer 202. No provider call."""

from datetime import datetime, timezone

from tuma import accepting, api
from tuma.domain.messages import accept_send, send_response
from tuma.observability import logger, metrics, tracer

app = api.resolver()


@app.post("/v1/messages")
@tracer.capture_method
def send():
    now = datetime.now(timezone.utc)
    accepted = accept_send(api.json_body(app), api.tenant_id(app), now)
    accepting.store_and_queue(accepted, "send", now)
    return send_response(accepted), 202


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
