"""API keys: only their SHA-256 is stored; the key itself is shown once, when created.

SHA-256 without salt is enough here because keys are 256-bit random strings, not passwords:
there is nothing to brute-force, and a plain hash lets the authorizer look a key up directly."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from tuma.store.table import table

KEY_PREFIX = "tuma_"


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _key_item_key(api_key: str) -> dict:
    return {"pk": f"KEY#{key_hash(api_key)}", "sk": "KEY"}


@dataclass(frozen=True)
class KeyRecord:
    """What an API key stands for."""

    tenant_id: str
    sender_ids: tuple[str, ...] | None  # the `from` it may use; None: any (tuma.domain.senders)
    usage_key: str | None  # its tenant's API Gateway usage key (usage plan); None: made without one

    @property
    def allowed_senders(self) -> frozenset[str] | None:
        return None if self.sender_ids is None else frozenset(self.sender_ids)


def create_api_key(tenant_id: str, label: str = "", key_table=None, *, sender_ids: Iterable[str] | None = None,
                   usage_key: str | None = None) -> str:
    """Store a new key for `tenant_id` and return it; `key_table` defaults to the function's table.
    `sender_ids`: the only sender ids it may send as (None: any)."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    item = {**_key_item_key(api_key), "kind": "api_key", "tenant_id": tenant_id, "label": label,
            "created_at": datetime.now(timezone.utc).isoformat()}
    if sender_ids is not None:
        item["sender_ids"] = sorted(set(sender_ids))
    if usage_key:
        item["usage_key"] = usage_key
    (key_table or table()).put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
    return api_key


def key_record(api_key: str) -> KeyRecord | None:
    """The key's record; None for an unknown or disabled key."""
    if not api_key.isascii():
        # Every key is KEY_PREFIX + token_urlsafe: not one, and hashing a lone surrogate (a header
        # or JSON escape can carry one) raised UnicodeEncodeError, a 500 from the authorizer.
        return None
    item = table().get_item(Key=_key_item_key(api_key)).get("Item")
    if not item or item.get("disabled"):
        return None
    sender_ids = item.get("sender_ids")
    return KeyRecord(item["tenant_id"], tuple(sender_ids) if sender_ids is not None else None, item.get("usage_key"))


def tenant_for_key(api_key: str) -> str | None:
    record = key_record(api_key)
    return record.tenant_id if record else None
