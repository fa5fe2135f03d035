"""TOKEN authorizer: `Authorization: Bearer <key>` → the key's tenant, as principalId and context,
the sender ids it may use (context `sender_ids`, tuma.domain.senders), and its tenant's usage key
(usageIdentifierKey: API Gateway counts the request against the tenant's usage plan).

A missing header never reaches here (API Gateway answers 401); an unknown key is denied (403)."""

from tuma.domain import senders
from tuma.observability import logger
from tuma.store.api_keys import key_record


def _policy(principal: str, effect: str, method_arn: str, context: dict | None = None,
            usage_key: str | None = None) -> dict:
    # Allow the whole API, not just this method: API Gateway caches the policy per token.
    api_arn = "/".join(method_arn.split("/")[:2]) + "/*"
    policy = {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": api_arn}]}}
    if context:
        policy["context"] = context
    if usage_key:
        policy["usageIdentifierKey"] = usage_key
    return policy


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    scheme, _, key = (event.get("authorizationToken") or "").partition(" ")
    record = key_record(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if record is None:
        logger.info("api key refused")
        return _policy("anonymous", "Deny", event["methodArn"])
    logger.append_keys(tenant_id=record.tenant_id)
    return _policy(record.tenant_id, "Allow", event["methodArn"],
                   {"tenant_id": record.tenant_id, "sender_ids": senders.to_context(record.sender_ids)},
                   record.usage_key)
