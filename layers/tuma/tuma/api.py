"""What the API handlers share: the resolver with Tuma's error shape, and the caller's tenant."""

from __future__ import annotations

import json

from tuma import lazy_powertools  # noqa: F401  (first: Powertools' event_handler without its __init__)
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from tuma.domain import senders
from tuma.domain.errors import ApiError, TooLarge, ValidationFailed
from tuma.observability import logger


def error_response(status: int, code: str, message: str, details=None) -> Response:
    return Response(status_code=status, content_type="application/json",
                    body={"error": {"code": code, "message": message, "details": details or []}})


def resolver(kind: type = APIGatewayRestResolver):
    """A resolver of `kind` (the REST API's by default; the webhook uses a Function URL's)."""
    app = kind()

    @app.exception_handler(ApiError)
    def _api_error(problem: ApiError) -> Response:
        logger.info("request refused", extra={"code": problem.code, "status": problem.status})
        return error_response(problem.status, problem.code, problem.message, problem.details)

    @app.not_found
    def _no_route(_: NotFoundError) -> Response:
        return error_response(404, "not_found", f"No route {app.current_event.http_method} {app.current_event.path}.")

    return app


# Under Lambda's 6 MB invocation payload (6,291,456 bytes with the event around the body): a body
# this size works on every stack; a larger one is a 413 here, or refused by Lambda before this
# code on AWS (README, "Limits").
MAX_BODY_BYTES = 5 * 1024 * 1024


def json_body(app: APIGatewayRestResolver) -> object:
    try:
        body = app.current_event.decoded_body
    except (UnicodeDecodeError, ValueError):  # base64 of bytes that are not UTF-8 (or not base64)
        raise ValidationFailed("invalid_encoding", "The request body must be JSON in UTF-8.") from None
    if not body:
        raise ValidationFailed("invalid_request", "The request needs a JSON body.")
    if len(body) > MAX_BODY_BYTES // 4 and len(body.encode()) > MAX_BODY_BYTES:  # (cheap test first)
        raise TooLarge("payload_too_large", f"The request body is over {MAX_BODY_BYTES:,} bytes: split it into "
                       "several requests.", [{"field": "body", "reason": f"at most {MAX_BODY_BYTES} bytes"}])
    try:
        payload = json.loads(body)
    except ValueError as problem:
        raise ValidationFailed("invalid_json", f"The request body is not valid JSON: {problem}.") from None
    except RecursionError:
        raise ValidationFailed("invalid_json", "The request body is nested too deeply to read.") from None
    try:
        # JSON may escape half of a UTF-16 pair ("\ud83d"): text no SMS and no store can carry.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as problem:
        raise ValidationFailed("invalid_text", "The request holds a lone surrogate escape (such as \\ud83d) "
                               f"at character {problem.start} of its text: send whole characters.") from None
    return payload


def tenant_id(app: APIGatewayRestResolver) -> str:
    """The tenant the authorizer resolved from the API key (its principalId)."""
    authorizer = app.current_event.request_context.authorizer
    tenant = (authorizer.get("tenant_id") if authorizer else None) or (authorizer or {}).get("principalId")
    if not tenant:
        raise RuntimeError("no tenant in the authorizer context: is the route behind the authorizer?")
    return tenant


def require_sender_allowed(app: APIGatewayRestResolver, sender: str) -> None:
    """403 sender_id_not_allowed unless the caller's key may send as `sender` (the authorizer's
    context carries the key's sender ids)."""
    authorizer = app.current_event.request_context.authorizer or {}
    senders.require_allowed(sender, senders.from_context(authorizer.get("sender_ids")))


MAX_IDEMPOTENCY_KEY = 255  # Stripe's bound


def idempotency_key(app: APIGatewayRestResolver) -> str | None:
    """The request's Idempotency-Key header (docs/retries.md), or None when it has none."""
    key = app.current_event.headers.get("Idempotency-Key")  # case-insensitive
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ValidationFailed("invalid_idempotency_key",
                               f"The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
                               [{"field": "Idempotency-Key", "reason": "must be 1 to 255 printable ASCII characters"}])
    return key
