"""What GET /v1/messages/{id} shows, built from the stored request and recipient items."""

from __future__ import annotations

from decimal import Decimal

from tuma.domain import ids
from tuma.domain.errors import NotFound

_RECIPIENT_FIELDS = ("provider_message_id", "cost", "error_code", "reason", "updated_at",
                     "network", "delivery_time", "latency_ms")  # the last three: SayaSMS's delivery report


def _plain(entry: dict) -> dict:
    """DynamoDB numbers (Decimal) as JSON numbers, not strings."""
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in entry.items()}


def recipient_view(request: dict, index: int, item: dict | None) -> dict:
    accepted = next((r for r in request["recipients"] if int(r["i"]) == index), None)
    if accepted is None:
        raise NotFound("not_found", f"No message {ids.recipient_id(request['request_id'], index)}.")
    view = {
        "message_id": ids.recipient_id(request["request_id"], index),
        "request_id": request["request_id"],
        "number": accepted["number"],
        "status": (item or {}).get("status", accepted["status"]),
        "provider": (item or {}).get("provider", request["provider"]),
        "created_at": request["created_at"],
    }
    if item:
        view.update(_plain({name: item[name] for name in _RECIPIENT_FIELDS if item.get(name) is not None}))
    elif accepted.get("reason"):
        view["reason"] = accepted["reason"]
    history = [{"status": accepted["status"], "at": request["created_at"],
                **({"reason": accepted["reason"]} if accepted.get("reason") else {})}]
    history += [_plain(entry) for entry in (item or {}).get("history", [])]
    view["history"] = history
    return view


def request_view(request: dict, items: dict[int, dict]) -> dict:
    recipients = [recipient_view(request, int(r["i"]), items.get(int(r["i"]))) for r in request["recipients"]]
    counts: dict[str, int] = {}
    for recipient in recipients:
        counts[recipient["status"]] = counts.get(recipient["status"], 0) + 1
    return {"message_id": request["request_id"], "from": request["from"], "provider": request["provider"],
            "created_at": request["created_at"], "counts": counts, "recipients": recipients}


def view_for(message_id: str, load) -> dict:
    """`load(request_id)` returns (request item or None, recipient items by index)."""
    parsed = ids.parse_message_id(message_id)
    request, items = load(parsed[0]) if parsed else (None, {})
    if request is None:
        # The same answer for an unknown id and for another tenant's: ids reveal nothing.
        raise NotFound("not_found", f"No message {message_id}.")
    _, index = parsed
    return request_view(request, items) if index is None else recipient_view(request, index, items.get(index))
