"""The stored records the domain reads, as the store hands them over (tuma.store builds them from
its items): the domain never reads a storage key. Kept free of the validation code, so that the
status and callback functions load only this."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chunk:
    """Up to CHUNK_SIZE consecutive positions of a request, as accepted."""

    start: int  # the first position (1-based)
    numbers: list[str]  # E.164, or the text given when rejected
    rejected: dict[str, str]  # position (as text) -> reason
    segments: list[int] = field(default_factory=list)  # per position; 0 when there was no valid body
    encodings: str = ""  # per position: G (GSM-7), U (UCS-2), - (no valid body)

    def at(self, index: int) -> int | None:
        """Where position `index` is in this chunk's lists, or None when it holds no such position."""
        return index - self.start if self.start <= index < self.start + len(self.numbers) else None


@dataclass(frozen=True)
class MessageChange:
    """One write to a message's status item, as the table's stream tells it."""

    tenant_id: str
    request_id: str  # msg_…, bat_… (tuma.domain.ids)
    index: int  # the message's position in its request (1-based)
    new: dict  # the item's fields after the write
    old_status: str | None  # its status before (None: the item is new)
