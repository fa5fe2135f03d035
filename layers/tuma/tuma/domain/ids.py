"""Message ids. A send request is `msg_<ULID>` and a bulk batch `bat_<ULID>`; the n-th recipient
(1-based) of either is `<request id>_<n>`, SayaSMS's own rule, so a caller knows every message id
of a 10,000-message batch without a list, and an id tells which request it belongs to."""

from __future__ import annotations

import hashlib
import re

from ulid import ULID

CHUNK_SIZE = 1000  # positions per stored chunk item of a request (about 20 KB)

_ID = re.compile(r"^((?:msg|bat)_[0-9A-HJKMNP-TV-Z]{26})(?:_([1-9][0-9]{0,5}))?$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_request_id() -> str:
    return f"msg_{ULID()}"


def new_batch_id() -> str:
    return f"bat_{ULID()}"


def recipient_id(request_id: str, index: int) -> str:
    return f"{request_id}_{index}"


def is_batch(request_id: str) -> bool:
    return request_id.startswith("bat_")


def parse_message_id(message_id: str) -> tuple[str, int | None] | None:
    """(request id, recipient index or None) for a well-formed id, else None."""
    match = _ID.match(message_id or "")
    if not match:
        return None
    return match.group(1), int(match.group(2)) if match.group(2) else None


def derived_request_id(seed: str) -> str:
    """A request id that is the same every time for the same seed (a producer job's SQS message
    id), so a redelivered job without ids claims the same recipients instead of new ones."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:17], "big") >> 6  # 130 bits
    return "msg_" + "".join(_CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(26)))


def chunk_start(index: int) -> int:
    """The first position of the stored chunk that holds position `index`."""
    return (index - 1) // CHUNK_SIZE * CHUNK_SIZE + 1
