"""GET /v1/messages/{id}: a recipient's status and history, or every recipient of a request."""

from tuma import api
from tuma.domain.views import view_for
from tuma.observability import logger, tracer
from tuma.store import messages

app = api.resolver()


@app.get("/v1/messages/<message_id>")
@tracer.capture_method
def get_message(message_id: str):
    tenant = api.tenant_id(app)
    return view_for(message_id, lambda request_id: messages.get_request(tenant, request_id))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event, context):
    return app.resolve(event, context)
