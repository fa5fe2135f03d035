"""TOKEN authorizer: `Authorization: Bearer <key>` → the key's tenant, as principalId and context.

A missing header never reaches here (API Gateway answers 401); an unknown key is denied (403)."""

from tuma.observability import logger
from tuma.store.api_keys import tenant_for_key


def _policy(principal: str, effect: str, method_arn: str, context: dict | None = None) -> dict:
    # Allow the whole API, not just this method: API Gateway caches the policy per token.
    api_arn = "/".join(method_arn.split("/")[:2]) + "/*"
    policy = {"principalId": principal, "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": api_arn}]}}
    if context:
        policy["context"] = context
    return policy


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    scheme, _, key = (event.get("authorizationToken") or "").partition(" ")
    tenant = tenant_for_key(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if tenant is None:
        logger.info("api key refused")
        return _policy("anonymous", "Deny", event["methodArn"])
    logger.append_keys(tenant_id=tenant)
    return _policy(tenant, "Allow", event["methodArn"], {"tenant_id": tenant})
