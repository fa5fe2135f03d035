"""POST /v1/messages: validate, store the request, queue one job, answer 202. No provider call."""

from datetime import datetime, timezone

from aws_lambda_powertools.metrics import MetricUnit

from tuma import api, settings
from tuma.domain.messages import accept_send
from tuma.domain.phones import mask
from tuma.observability import logger, metrics, tracer
from tuma.store import messages, queue

app = api.resolver()


@app.post("/v1/messages")
@tracer.capture_method
def send():
    now = datetime.now(timezone.utc)
    accepted = accept_send(api.json_body(app), api.tenant_id(app), settings.default_provider(), now)
    messages.put_request(accepted, now)
    queue.enqueue(accepted.job())
    logger.append_keys(message_id=accepted.request_id)
    logger.info("send accepted", extra={"queued": len(accepted.queued), "provider": accepted.provider,
                                        "recipients": len(accepted.recipients)})
    for recipient in accepted.recipients:
        if recipient.reason:
            logger.info("recipient rejected", extra={"to": mask(recipient.given), "reason": recipient.reason})
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=len(accepted.queued))
    return accepted.response(), 202


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
