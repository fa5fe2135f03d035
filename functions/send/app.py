"""POST /v1/messages: validate, store the request, queue one job, answer 202. No provider call.
POST /v1/messages/estimate: the same checks, then segments and cost; nothing stored or queued."""

from datetime import datetime, timezone

from aws_lambda_powertools.metrics import MetricUnit

from tuma import accepting, api, settings, suppressing
from tuma.domain.estimates import estimate_response
from tuma.domain.messages import accept_send, send_response
from tuma.observability import logger, metrics, tracer

app = api.resolver()


@app.post("/v1/messages")
@tracer.capture_method
def send():
    return accepting.accept(app, "send", accept_send, send_response)


@app.post("/v1/messages/estimate")
@tracer.capture_method
def estimate():
    accepted = suppressing.screen(accept_send(api.json_body(app), api.tenant_id(app), datetime.now(timezone.utc)))
    api.require_sender_allowed(app, accepted.sender)
    metrics.add_metric(name="EstimatesAnswered", unit=MetricUnit.Count, value=1)
    return estimate_response(accepted, settings.rates()), 200


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
