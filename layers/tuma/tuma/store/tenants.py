"""A tenant's callback signing secret: `TENANT#<id>` / `SECRET`.

Created with the tenant's first API key (scripts/create_api_key.py prints it once) and read by
the callback function to sign what it POSTs. It must be stored readable (an HMAC key cannot be
hashed); the table is encrypted at rest and only the callback function reads it."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from tuma.store.table import table

SECRET_PREFIX = "whsec_"
CACHE_S = 300  # a rotated secret is used within five minutes
_cache: dict[str, tuple[float, str | None]] = {}


def _key(tenant_id: str) -> dict:
    return {"pk": f"TENANT#{tenant_id}", "sk": "SECRET"}


def ensure_signing_secret(tenant_id: str, secret_table=None) -> tuple[str, bool]:
    """The tenant's secret, created if it has none: (secret, created now?)."""
    target = secret_table or table()
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    try:
        target.put_item(Item={**_key(tenant_id), "kind": "signing_secret", "tenant_id": tenant_id,
                              "secret": secret, "created_at": datetime.now(timezone.utc).isoformat()},
                        ConditionExpression="attribute_not_exists(pk)")
        return secret, True
    except ClientError as problem:
        if problem.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    return target.get_item(Key=_key(tenant_id), ConsistentRead=True)["Item"]["secret"], False


def signing_secret(tenant_id: str) -> str | None:
    cached = _cache.get(tenant_id)
    if cached and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    item = table().get_item(Key=_key(tenant_id)).get("Item")
    secret = item["secret"] if item else None
    _cache[tenant_id] = (time.monotonic(), secret)
    return secret
