"""The status machine: queued → sending → sent → delivered | failed, plus rejected, unknown and
expired (no final delivery report in time; a later delivered or failed report still replaces it).
A scheduled request's messages are `scheduled` until their time, and `cancelled` (final) when
cancelled before the sender took them (tuma.domain.scheduling).

Status only moves forward; a late or repeated event is kept in the history but never moves a
message back. The store enforces the same order with conditional writes."""

from __future__ import annotations

QUEUED, SENDING, SENT, DELIVERED, FAILED, REJECTED, UNKNOWN = (
    "queued", "sending", "sent", "delivered", "failed", "rejected", "unknown")
EXPIRED = "expired"
SCHEDULED, CANCELLED = "scheduled", "cancelled"

# Rank by how far a message has got; finals share the top rank so none replaces another.
# `expired` ranks above `sent` and below the finals: a late delivered/failed report still wins.
RANK = {SCHEDULED: 0, QUEUED: 1, SENDING: 2, UNKNOWN: 3, SENT: 4, EXPIRED: 5,
        DELIVERED: 6, FAILED: 6, REJECTED: 6, CANCELLED: 6}
FINAL = frozenset({DELIVERED, FAILED, REJECTED, CANCELLED})


def may_move(current: str | None, new: str) -> bool:
    if current is None:
        return True
    if current in FINAL:
        return False
    return RANK[new] > RANK[current]


def earlier_than(new: str) -> list[str]:
    """The statuses a message may be in for `new` to replace it (for conditional writes)."""
    return [s for s in RANK if may_move(s, new) and s not in FINAL]
