"""Callbacks to clients: what a status change looks like, how it is signed, when it is retried.

A send with `callback_url` gets one POST per status change of each recipient (sent, delivered,
failed, expired, unknown; never the internal `sending`). The body is JSON; the headers are

  Tuma-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(tenant secret, "<t>.<body>")>
  Tuma-Event-Id:  <message id>:<status>   (the same for every retry of one change)

See docs/callbacks.md for the verification steps."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

from tuma.domain.ids import recipient_id
from tuma.domain.records import MessageChange
from tuma.domain.status import SENDING

SIGNATURE_HEADER = "Tuma-Signature"
EVENT_ID_HEADER = "Tuma-Event-Id"
SCHEME = "v1"
# Fields of a recipient item that a client may see, as stored.
_SHOWN = ("provider", "cost", "error_code", "reason", "network", "delivery_time", "latency_ms")
MAX_DELAY_S = 43_200  # SQS's longest visibility timeout (12 h)


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def callback_job(change: MessageChange | None) -> dict | None:
    """The callback job for one write to a message's status item (tuma.store.callbacks reads it
    from the table's stream), or None when there is nothing to tell: no change of a message, no
    callback_url, status unchanged, or the internal `sending`."""
    if change is None or not change.new.get("callback_url"):
        return None
    new, before = change.new, change.old_status
    status = new.get("status")
    if not status or status == before or status == SENDING:
        return None
    message_id = new.get("message_id") or recipient_id(change.request_id, change.index)
    payload = {
        "id": f"{message_id}:{status}",
        "type": "message.status",
        "message_id": message_id,
        "request_id": change.request_id,
        "status": status,
        "previous_status": before,
        "at": new.get("updated_at"),
        **{name: _plain(new[name]) for name in _SHOWN if new.get(name) is not None},
    }
    return {"tenant_id": change.tenant_id, "callback_url": new["callback_url"], "payload": payload}


def body_of(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def signature(secret: str, timestamp: int, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},{SCHEME}={digest}"


def verify(secret: str, header: str, body: str, now: int, tolerance_s: int = 300) -> bool:
    """What a client does (docs/callbacks.md): check the timestamp, recompute, compare in constant time."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split(",", 1)[1].split("=", 1)[1]
    return hmac.compare_digest(expected, parts.get(SCHEME, ""))


def retry_delay(receive_count: int, base_s: int) -> int:
    """Seconds before attempt `receive_count + 1`: base, 2·base, 4·base ..., at most 12 h."""
    return min(base_s * 2 ** max(receive_count - 1, 0), MAX_DELAY_S)
