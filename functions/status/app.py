"""GET /v1/messages/{id} (a message, or every message of a single send) and GET /v1/batches/{id}."""

from tuma import api, settings
from tuma.domain import costs, ids
from tuma.domain.errors import NotFound
from tuma.domain.views import batch_view, batch_view_of_counts, message_view, request_view
from tuma.observability import logger, tracer
from tuma.store import messages, progress

app = api.resolver()


@app.get("/v1/messages/<message_id>")
@tracer.capture_method
def get_message(message_id: str):
    parsed = ids.parse_message_id(message_id)
    if parsed is None:
        raise NotFound("not_found", f"No message {message_id}.")
    request_id, index = parsed
    if index is not None:
        return message_view(*messages.get_message(api.tenant_id(app), request_id, index), message_id)
    if ids.is_batch(request_id):
        raise NotFound("not_found", f"{message_id} is a batch: see GET /v1/batches/{message_id}.")
    view = request_view(*messages.get_request(api.tenant_id(app), request_id), request_id)
    return {**view, **costs.request_totals(view, settings.rates(), settings.default_provider())}


@app.get("/v1/batches/<batch_id>")
@tracer.capture_method
def get_batch(batch_id: str):
    parsed = ids.parse_message_id(batch_id)
    if parsed is None or parsed[1] is not None or not ids.is_batch(parsed[0]):
        raise NotFound("not_found", f"No batch {batch_id}.")
    tenant = api.tenant_id(app)
    request, counters = progress.read(tenant, batch_id)  # 1 + SHARDS keys, whatever the batch's size
    if request is None or progress.usable(request, counters):
        view = batch_view_of_counts(request, progress.counts(counters), batch_id)
        return {**view, **costs.progress_totals(request, (counters or {}).get("spent", 0),
                                                int((counters or {}).get("segments", 0)), settings.rates(),
                                                settings.default_provider())}
    # Accepted before the counters, or with messages cancelled: read every message.
    request, touched, chunks = messages.get_statuses(tenant, batch_id)
    view = batch_view(request, [item["status"] for item in touched.values()], batch_id)
    return {**view, **costs.batch_totals(request, touched, chunks, settings.rates(), settings.default_provider())}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
