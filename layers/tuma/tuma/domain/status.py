"""The status machine: queued → sending → sent → delivered | failed, plus rejected and unknown.

Status only moves forward; a late or repeated event is kept in the history but never moves a
message back. The store enforces the same order with conditional writes."""

from __future__ import annotations

QUEUED, SENDING, SENT, DELIVERED, FAILED, REJECTED, UNKNOWN = (
    "queued", "sending", "sent", "delivered", "failed", "rejected", "unknown")

# Rank by how far a message has got; finals share the top rank so none replaces another.
RANK = {QUEUED: 0, SENDING: 1, UNKNOWN: 2, SENT: 3, DELIVERED: 4, FAILED: 4, REJECTED: 4}
FINAL = frozenset({DELIVERED, FAILED, REJECTED})


def may_move(current: str | None, new: str) -> bool:
    if current is None:
        return True
    if current in FINAL:
        return False
    return RANK[new] > RANK[current]


def earlier_than(new: str) -> list[str]:
    """The statuses a message may be in for `new` to replace it (for conditional writes)."""
    return [s for s in RANK if may_move(s, new) and s not in FINAL]
