"""POST /v1/messages/bulk: up to 10,000 personalised messages; stored and queued in a handful of
AWS requests (one item per 1,000 numbers, one job per 1,000 messages), answered 202."""

from tuma import accepting, api
from tuma.domain.bulk import accept_bulk, bulk_response
from tuma.observability import logger, metrics, tracer

app = api.resolver()


@app.post("/v1/messages/bulk")
@tracer.capture_method
def bulk():
    return accepting.accept(app, "bulk", accept_bulk, bulk_response)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
