"""POST /v1/compat/254sms/sendsms: 254sms's own send request and answer (tuma.domain.compat_254sms).

No Bearer authorizer on this route: the Tuma key is the body's `api_key`, checked here."""

from datetime import datetime, timezone

from tuma import accepting, api, suppressing
from tuma.domain import compat_254sms as compat
from tuma.domain.errors import ApiError
from tuma.domain.messages import accept_send
from tuma.observability import logger, metrics, tracer
from tuma.store.api_keys import tenant_for_key

app = api.resolver()


@app.post("/v1/compat/254sms/sendsms")
@tracer.capture_method
def sendsms():
    now = datetime.now(timezone.utc)
    try:
        request = compat.parse_request(_payload())
        tenant = tenant_for_key(request.api_key)
        if tenant is None:
            raise compat.Compat254Error("X001")
        logger.append_keys(tenant_id=tenant)
        try:
            accepted = suppressing.screen(accept_send(request.send, tenant, now))
        except ApiError as problem:
            raise compat.refused(problem) from None
    except compat.Compat254Error as problem:
        logger.info("254sms request refused", extra={"code": problem.code})
        return problem.body(), problem.http_status
    accepting.store_and_queue(accepted, "send", now)
    return compat.response(accepted), 200


def _payload() -> object:
    try:
        return api.json_body(app)
    except ApiError:
        return None  # not JSON at all: 254sms's answer is X000, every parameter is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
