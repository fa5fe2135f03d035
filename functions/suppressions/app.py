"""The tenant's opt-out list: PUT/GET/DELETE /v1/suppressions/{number}, GET /v1/suppressions (paged).
A number on it is `rejected` with reason `suppressed` in every later send (tuma.suppressing)."""

from datetime import datetime, timezone
from urllib.parse import unquote

from tuma import api
from tuma.domain import suppressions
from tuma.domain.errors import NotFound, ValidationFailed
from tuma.domain.phones import mask
from tuma.domain.times import iso_millis
from tuma.observability import logger, metrics, tracer
from tuma.store import suppressions as suppression_list

app = api.resolver()
PAGE_DEFAULT, PAGE_MAX = 100, 1000


def _number(raw: str) -> str:
    return suppressions.number(unquote(raw))  # "+" may come percent-encoded


@app.put("/v1/suppressions/<number>")
@tracer.capture_method
def put_suppression(number: str):
    e164 = _number(number)
    reason = suppressions.reason(api.json_body(app) if app.current_event.decoded_body else None)
    record = suppression_list.put(api.tenant_id(app), e164, reason, iso_millis(datetime.now(timezone.utc)))
    logger.info("number suppressed", extra={"to": mask(e164)})
    return record, 200


@app.get("/v1/suppressions/<number>")
@tracer.capture_method
def get_suppression(number: str):
    e164 = _number(number)
    record = suppression_list.get(api.tenant_id(app), e164)
    if record is None:
        raise NotFound("not_found", f"{e164} is not on the suppression list.")
    return record


@app.delete("/v1/suppressions/<number>")
@tracer.capture_method
def delete_suppression(number: str):
    e164 = _number(number)
    if not suppression_list.delete(api.tenant_id(app), e164):
        raise NotFound("not_found", f"{e164} is not on the suppression list.")
    logger.info("number unsuppressed", extra={"to": mask(e164)})
    return {"number": e164, "suppressed": False}


@app.get("/v1/suppressions")
@tracer.capture_method
def list_suppressions():
    query = app.current_event.query_string_parameters or {}
    limit = _limit(query.get("limit"))
    try:
        items, cursor = suppression_list.page(api.tenant_id(app), limit, query.get("cursor") or None)
    except ValueError:
        raise ValidationFailed("invalid_request", "`cursor` is not one this API gave.",
                               [{"field": "cursor", "reason": "must be a next_cursor from an earlier page"}]) from None
    return {"suppressions": items, "next_cursor": cursor}


def _limit(raw: str | None) -> int:
    if raw is None:
        return PAGE_DEFAULT
    # ASCII digits, a few: str.isdigit() also takes "²", which int() refuses, and int() refuses
    # over 4,300 digits; either was a 500.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= PAGE_MAX:
        raise ValidationFailed("invalid_request", f"`limit` must be a whole number from 1 to {PAGE_MAX}.",
                               [{"field": "limit", "reason": f"must be 1 to {PAGE_MAX}"}])
    return int(raw)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
