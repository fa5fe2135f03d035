"""SayaSMS delivery reports (seeds/sayasms-api.txt, "Webhooks & Delivery Reports").

A report names SayaSMS's per-recipient message id, not Tuma's. The sender stores the mapping
(SayaSMS id → Tuma message) when it records the send; a report can arrive before that (SayaSMS
may call back before its send response reaches the sender). Such a report is parked under the
same SayaSMS id and applied by whichever side comes second:

  webhook: read mapping → found: apply.  Not found: park the report, read the mapping again
           (strongly consistent) → found now: apply the parked report.
  sender:  write mapping → read parked reports (strongly consistent) → apply each.

Each side writes before its strongly consistent read, so at least one side sees the other's
write: no report is lost. (The store may make the sender's read cheaper, as long as that holds:
tuma.store.reports has parking leave a mark where the sender's mapping write sees it.) Both may apply the same report; applying is idempotent and forward
only (one conditional write that succeeds only if the report moves the status on,
tuma.domain.status), so the outcome is the same under any order or repetition.

A report that changes nothing costs no write: a repeated or late one fails the conditional write
and is not added to the history. `queued` and `sent` never change anything: the sender records
every SayaSMS message that has an id as `sent` or `failed` (tuma.providers.sayasms), and both
reports mean `sent`. So they are answered without a read or a write, and never parked; only
`delivered` and `failed` are looked up, applied and parked.

Each SayaSMS call's callback URL carries a reference, `ref=<ULID>.<blocks>` (ReportRef): SayaSMS
posts every report of the call to that URL, so a report names its call as well as its id, and the
store can link a call's ids in `blocks` items (by a hash of the id) instead of one item per id.
The reference only narrows the look-up: a report without one (or with a malformed one) is still
found by its id, or parked.

254sms has no delivery reports: its messages end at the send response's `sent` or `failed`."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ulid import ULID

from tuma.domain.status import DELIVERED, FAILED, FINAL, SENT, may_move

PROVIDER = "sayasms"
# SayaSMS's four events and the Tuma status each one means. `queued` (SayaSMS took it) and
# `sent` (handed to the carrier) both mean Tuma's `sent`: the provider has the message.
EVENTS = {"message.queued": SENT, "message.sent": SENT, "message.delivered": DELIVERED, "message.failed": FAILED}
# The statuses the sender records a SayaSMS message in when SayaSMS gave it an id (the only
# messages a report can find): an event matters only if it can move one of them on.
LINKED_STATUSES = (SENT, FAILED)
MATTERING_EVENTS = tuple(e for e, s in EVENTS.items() if any(may_move(linked, s) for linked in LINKED_STATUSES))


def parking_slot(event: str) -> str:
    """Where a report waits for its mapping: one slot for the final events (of two final reports
    only the first can ever apply, so a second need not be kept), the event's own otherwise. One
    slot is one strongly consistent read per message for the sender's look-up."""
    return "final" if EVENTS[event] in FINAL else event


PARKING_SLOTS = tuple(sorted({parking_slot(e) for e in MATTERING_EVENTS}))
_MAX_ID = 200
_MAX_TEXT = 500


IDS_PER_BLOCK = 25  # a call's ids per linking block, on average: 25 ids of ~30 characters fill about 1 KB
_REF = re.compile(r"([0-9A-HJKMNP-TV-Z]{26})\.([1-9][0-9]{0,3})", re.ASCII)  # ULID . blocks (up to 9,999)


@dataclass(frozen=True)
class ReportRef:
    """A SayaSMS call's reference, in its callback URL: which call a report comes from, and in how
    many blocks that call's ids are linked."""

    call: str  # a ULID, new for each call
    blocks: int

    @classmethod
    def new(cls, messages: int) -> ReportRef:
        return cls(str(ULID()), max(1, -(-messages // IDS_PER_BLOCK)))

    @classmethod
    def parse(cls, value: object) -> ReportRef | None:
        """The reference, or None for anything not of its exact form (a report is then looked up
        by its id alone: a malformed reference is ignored, never an error)."""
        match = _REF.fullmatch(value) if isinstance(value, str) else None
        return cls(match.group(1), int(match.group(2))) if match else None

    def __str__(self) -> str:
        return f"{self.call}.{self.blocks}"

    def block_of(self, provider_message_id: str) -> int:
        """The block that links this id: the same on the sender's side and the webhook's."""
        return zlib.crc32(provider_message_id.encode()) % self.blocks


class MalformedReport(ValueError):
    """The body is not a SayaSMS delivery report; the message says why (never echoes numbers)."""


@dataclass(frozen=True)
class Report:
    event: str  # message.queued | message.sent | message.delivered | message.failed
    provider_message_id: str
    received_at: str  # ISO 8601, when Tuma received it
    details: dict = field(default_factory=dict)  # network, delivery_time, latency_ms | reason
    report_ref: ReportRef | None = None  # the call's reference from the callback URL, when it came well-formed

    @property
    def status(self) -> str:
        return EVENTS[self.event]

    @property
    def key(self) -> str:
        """What makes a report the same report again: each event happens once per message."""
        return self.event

    def to_item(self) -> dict:
        return {"event": self.event, "provider_message_id": self.provider_message_id,
                "received_at": self.received_at, "details": dict(self.details)}

    @classmethod
    def from_item(cls, item: dict) -> Report:
        details = {k: int(v) if k == "latency_ms" else v for k, v in (item.get("details") or {}).items()}
        return cls(item["event"], item["provider_message_id"], item["received_at"], details)


def parse_report(payload: object, received_at: str, report_ref: object = None) -> Report:
    """A well-formed report, or MalformedReport. `to` is not needed (the id says which message).
    `report_ref`: the `ref` of the URL SayaSMS called, kept only when well-formed (ReportRef.parse)."""
    if not isinstance(payload, dict):
        raise MalformedReport("the body must be a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or event not in EVENTS:  # a list or an object is unhashable: a TypeError
        raise MalformedReport(f"`event` must be one of {', '.join(EVENTS)}")
    message_id = payload.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip() or len(message_id) > _MAX_ID:
        raise MalformedReport("`message_id` must be a non-empty string")
    status = payload.get("status")
    if status is not None and status != event.removeprefix("message."):
        raise MalformedReport("`status` does not match `event`")
    details: dict = {}
    if event == "message.delivered":
        for name in ("network", "delivery_time"):
            value = payload.get(name)
            if value is not None:
                if not isinstance(value, str) or len(value) > _MAX_TEXT:
                    raise MalformedReport(f"`{name}` must be a string")
                details[name] = value
        latency = payload.get("latency_ms")
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
                raise MalformedReport("`latency_ms` must be a non-negative integer")
            details["latency_ms"] = latency
    elif event == "message.failed":
        reason = payload.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_TEXT):
            raise MalformedReport("`reason` must be a string")
        details["reason"] = reason or "failed (SayaSMS gave no reason)"
    return Report(event, message_id.strip(), received_at, details, ReportRef.parse(report_ref))


@dataclass(frozen=True)
class MessageRef:
    """Which Tuma message a SayaSMS id belongs to."""

    tenant_id: str
    request_id: str
    index: int


class ReportStore(Protocol):
    def mapping(self, provider_message_id: str, consistent: bool = True,
                report_ref: ReportRef | None = None) -> MessageRef | None:
        """Read of the SayaSMS id's mapping, strongly consistent unless told otherwise; with the
        report's call reference, where that call linked it first."""

    def park(self, report: Report, now: datetime) -> None:
        """Keep a report whose message is not known yet."""

    def parked(self, provider_message_id: str) -> list[Report]:
        """Strongly consistent read of the reports parked under this id, in arrival order."""

    def unpark(self, report: Report) -> None: ...

    def apply(self, ref: MessageRef, report: Report, now: datetime) -> str:
        """Apply to the message if it moves its status on (one conditional write, nothing else
        otherwise): "applied", "late", "duplicate" or "no_message"."""

    def map(self, provider_message_id: str, ref: MessageRef, now: datetime) -> None: ...


def receive(report: Report, store: ReportStore, now: datetime) -> str:
    """The webhook's side: apply the report now, or park it for the sender to apply; "unchanged"
    for an event that cannot change any message (no read, no write)."""
    if report.event not in MATTERING_EVENTS:
        return "unchanged"
    # An eventually consistent look first (half the price): a mapping it misses is found by the
    # strongly consistent read after parking.
    ref = store.mapping(report.provider_message_id, consistent=False, report_ref=report.report_ref)
    if ref is not None:
        return store.apply(ref, report, now)
    store.park(report, now)
    ref = store.mapping(report.provider_message_id, report_ref=report.report_ref)
    if ref is None:
        return "parked"
    outcome = store.apply(ref, report, now)
    store.unpark(report)
    return outcome


def link(provider_message_id: str, ref: MessageRef, store: ReportStore, now: datetime) -> list[tuple[Report, str]]:
    """The sender's side, once it has recorded the send: map the id, then apply what was parked."""
    store.map(provider_message_id, ref, now)
    return apply_parked(provider_message_id, ref, store, now)


def apply_parked(provider_message_id: str, ref: MessageRef, store: ReportStore,
                 now: datetime) -> list[tuple[Report, str]]:
    """The second half of `link`, for a store that wrote many mappings at once beforehand."""
    outcomes = []
    for report in store.parked(provider_message_id):
        outcomes.append((report, store.apply(ref, report, now)))
        store.unpark(report)
    return outcomes


def by_arrival(reports: Iterable[Report]) -> list[Report]:
    return sorted(reports, key=lambda r: r.received_at)
