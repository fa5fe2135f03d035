"""API keys: only their SHA-256 is stored; the key itself is shown once, when created.

SHA-256 without salt is enough here because keys are 256-bit random strings, not passwords:
there is nothing to brute-force, and a plain hash lets the authorizer look a key up directly."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from tuma.store.table import table

KEY_PREFIX = "tuma_"


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _key_item_key(api_key: str) -> dict:
    return {"pk": f"KEY#{key_hash(api_key)}", "sk": "KEY"}


def create_api_key(tenant_id: str, label: str = "", key_table=None) -> str:
    """Store a new key for `tenant_id` and return it; `key_table` defaults to the function's table."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    (key_table or table()).put_item(Item={
        **_key_item_key(api_key), "kind": "api_key", "tenant_id": tenant_id, "label": label,
        "created_at": datetime.now(timezone.utc).isoformat()},
        ConditionExpression="attribute_not_exists(pk)")
    return api_key


def tenant_for_key(api_key: str) -> str | None:
    item = table().get_item(Key=_key_item_key(api_key)).get("Item")
    if not item or item.get("disabled"):
        return None
    return item["tenant_id"]
