"""Which sender ids (`from`) a tenant's API key may send as: the ones registered with the key
(scripts/create_api_key.py --sender-id). A key with none registered (made before sender ids
were, or with --any-sender-id) may use any: that is what `None` stands for here.

The authorizer hands them to the API functions in its context, which holds only strings: a
comma-separated list (sender ids are letters and digits), or ANY."""

from __future__ import annotations

from collections.abc import Iterable

from tuma.domain.errors import Forbidden

ANY = "*"


def to_context(sender_ids: Iterable[str] | None) -> str:
    return ANY if sender_ids is None else ",".join(sender_ids)


def from_context(value: str | None) -> frozenset[str] | None:
    """The allowed sender ids; None: any. A context without the entry (not from Tuma's
    authorizer, e.g. a hand-built test event) allows any."""
    if value is None or value == ANY:
        return None
    return frozenset(sender for sender in value.split(",") if sender)


def require_allowed(sender: str, allowed: frozenset[str] | None) -> None:
    if allowed is not None and sender not in allowed:
        raise Forbidden("sender_id_not_allowed",
                        f"This API key may not send as {sender!r}: its sender ids are "
                        f"{', '.join(sorted(allowed)) or 'none'}.",
                        [{"field": "from", "reason": "is not a sender id registered for this API key"}])
