"""Message ids: `msg_<ULID>` for a request, `msg_<ULID>_<n>` (1-based) for its n-th recipient,
the same rule SayaSMS uses, so a recipient's id tells which request it belongs to."""

from __future__ import annotations

import re

from ulid import ULID

_RECIPIENT_ID = re.compile(r"^(msg_[0-9A-HJKMNP-TV-Z]{26})(?:_([1-9][0-9]{0,5}))?$")


def new_request_id() -> str:
    return f"msg_{ULID()}"


def recipient_id(request_id: str, index: int) -> str:
    return f"{request_id}_{index}"


def parse_message_id(message_id: str) -> tuple[str, int | None] | None:
    """(request id, recipient index or None) for a well-formed id, else None."""
    match = _RECIPIENT_ID.match(message_id or "")
    if not match:
        return None
    return match.group(1), int(match.group(2)) if match.group(2) else None
