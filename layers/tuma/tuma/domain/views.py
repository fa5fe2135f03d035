"""What the status routes show, built from the stored request, its chunks (tuma.domain.records) and
its message items."""

from __future__ import annotations

from decimal import Decimal

from tuma.domain import ids
from tuma.domain.errors import NotFound
from tuma.domain.records import Chunk
from tuma.domain.segments import GSM7, UCS2
from tuma.domain.status import QUEUED, REJECTED, SCHEDULED

_MESSAGE_FIELDS = ("provider_message_id", "cost", "cost_estimated", "error_code", "reason", "failover_from",
                   "failover_reason", "updated_at",
                   "network", "delivery_time", "latency_ms")  # the last three: SayaSMS's delivery report
_ENCODINGS = {"G": GSM7, "U": UCS2}  # the letters of a chunk's `encodings` (tuma.domain.records.Chunk)


def _plain(entry: dict) -> dict:
    """DynamoDB numbers (Decimal) as JSON numbers, not strings."""
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in entry.items()}


def _accepted(request: dict, chunk: Chunk | None, index: int) -> tuple[str, str, str | None] | None:
    """(number, status, reason) of position `index` as accepted, or None if there is none."""
    at = chunk.at(index) if chunk else None
    if at is None or not chunk.numbers[at]:
        return None
    reason = chunk.rejected.get(str(index))
    return chunk.numbers[at], REJECTED if reason else QUEUED, reason


def _measured(chunk: Chunk, index: int) -> dict:
    """{"encoding", "segments"} of position `index` as accepted; {} where the chunk does not say."""
    at = index - chunk.start
    if at < min(len(chunk.encodings), len(chunk.segments)) and chunk.encodings[at] in _ENCODINGS:
        return {"encoding": _ENCODINGS[chunk.encodings[at]], "segments": chunk.segments[at]}
    return {}


def _waiting(request: dict) -> str:
    """What a sendable message the sender has not touched is: scheduled until its request is
    released to the queue (tuma.store.schedules), then queued."""
    return SCHEDULED if request.get("scheduled_at") and not request.get("released_at") else QUEUED


def _scheduling(request: dict) -> dict:
    return {name: request[name] for name in ("scheduled_at", "cancelled_at") if request.get(name)}


def message_view(request: dict | None, chunk: Chunk | None, item: dict | None, message_id: str) -> dict:
    index = ids.parse_message_id(message_id)[1]
    accepted = _accepted(request, chunk, index) if request else None
    if accepted is None:
        raise NotFound("not_found", f"No message {message_id}.")
    number, status, reason = accepted
    first = SCHEDULED if status == QUEUED and request.get("scheduled_at") else status
    if status == QUEUED:
        status = _waiting(request)
    view = {"message_id": message_id, "request_id": request["request_id"], "number": number,
            "status": (item or {}).get("status", status), "provider": (item or {}).get("provider", request.get("provider")),
            "created_at": request["created_at"]}
    view.update(_measured(chunk, index))
    if request.get("scheduled_at"):
        view["scheduled_at"] = request["scheduled_at"]
    if item:
        view.update(_plain({name: item[name] for name in _MESSAGE_FIELDS if item.get(name) is not None}))
    elif reason:
        view["reason"] = reason
    history = [{"status": first, "at": request["created_at"], **({"reason": reason} if reason else {})}]
    if first == SCHEDULED and request.get("released_at"):
        history.append({"status": QUEUED, "at": request["released_at"]})
    view["history"] = history + [_plain(entry) for entry in (item or {}).get("history", [])]
    return view


def request_view(request: dict | None, chunks: list[Chunk], items: dict[int, dict], request_id: str) -> dict:
    if request is None:
        # The same answer for an unknown id and for another tenant's: ids reveal nothing.
        raise NotFound("not_found", f"No message {request_id}.")
    recipients = []
    for chunk in chunks:
        for index in range(chunk.start, chunk.start + len(chunk.numbers)):
            if _accepted(request, chunk, index):
                message_id = ids.recipient_id(request_id, index)
                recipients.append(message_view(request, chunk, items.get(index), message_id))
    return {"message_id": request_id, "from": request["from"], "provider": request.get("provider"),
            "created_at": request["created_at"], **_scheduling(request),
            "counts": count(r["status"] for r in recipients), "recipients": recipients}


def batch_view(request: dict | None, touched_statuses: list[str], batch_id: str) -> dict:
    """Counts per status of a batch: messages the sender has not touched yet are still queued
    (or scheduled)."""
    return batch_view_of_counts(request, count(touched_statuses), batch_id)


def batch_view_of_counts(request: dict | None, touched: dict[str, int], batch_id: str) -> dict:
    """The same from the counts of the touched messages by status (tuma.store.progress)."""
    if request is None:
        raise NotFound("not_found", f"No batch {batch_id}.")
    # A report can be counted a moment before the sender's own count of its message: never below 0.
    counts = {status: n for status, n in touched.items() if n > 0}
    untouched = max(0, int(request["accepted"]) - sum(counts.values()))
    if untouched:
        counts[_waiting(request)] = counts.get(_waiting(request), 0) + untouched
    if int(request["rejected"]):
        counts[REJECTED] = counts.get(REJECTED, 0) + int(request["rejected"])
    final = sum(n for s, n in counts.items() if s not in (QUEUED, SCHEDULED, "sending"))
    return {"batch_id": batch_id, "from": request["from"], "provider": request.get("provider"),
            "created_at": request["created_at"], **_scheduling(request), "total": int(request["total"]),
            "accepted": int(request["accepted"]), "counts": counts, "done": final == int(request["total"])}


def count(statuses) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts
